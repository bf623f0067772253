from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Gauge

from feedback_shared.metrics import dlq_counter, stall_counter

RULES = ("welcome", "repeat_purchase", "review_bonus", "surprise_bonus", "return_reversal", "redeem", "expiry")


@dataclass(frozen=True)
class LoyaltyMetrics:
    handled: Counter
    points: Counter
    purchases: Counter
    repeat_purchase_ratio: Gauge
    repeat_revenue_share: Gauge
    erased_late: Counter
    dlq: Counter
    stalls: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> LoyaltyMetrics:
        m = cls(
            handled=Counter("loyalty_events_handled", "Events the loyalty rules have been applied to, by type.",
                            ["type"], registry=registry),
            points=Counter("loyalty_points_awarded", "Points moved on the ledger, by rule (absolute value).",
                           ["rule"], registry=registry),
            purchases=Counter("loyalty_purchases", "Purchases seen, first or repeat.", ["kind"], registry=registry),
            repeat_purchase_ratio=Gauge("loyalty_repeat_purchase_ratio",
                                        "Share of purchases that are a customer's second or later.",
                                        ["currency"], registry=registry),
            repeat_revenue_share=Gauge("loyalty_repeat_revenue_share",
                                       "Share of revenue from repeat purchases (seed 000, RJMetrics).",
                                       ["currency"], registry=registry),
            erased_late=Counter(
                "loyalty_erased_late", "Events from before their customer's erasure that arrived after it, by "
                "type: purchases and returns recorded under the pseudonym, review bonuses dropped; nothing "
                "announced.", ["type"], registry=registry),
            dlq=dlq_counter(registry),
            stalls=stall_counter(registry),
        )
        for rule in RULES:
            m.points.labels(rule=rule)
        for kind in ("first", "repeat"):
            m.purchases.labels(kind=kind)
        for event_type in ("purchase.recorded", "order.returned", "feedback.scored"):
            m.handled.labels(type=event_type)
        return m

    def set_figures(self, figures: dict[str, dict[str, Decimal]]) -> None:
        for currency, f in figures.items():
            if f["purchases"]:
                self.repeat_purchase_ratio.labels(currency=currency).set(float(f["repeat_purchases"] / f["purchases"]))
            if f["revenue"]:
                self.repeat_revenue_share.labels(currency=currency).set(float(f["repeat_revenue"] / f["revenue"]))
