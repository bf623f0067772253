from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from feedback_shared.metrics import dlq_counter

RULES = ("welcome", "repeat_purchase", "return_reversal")


@dataclass(frozen=True)
class LoyaltyMetrics:
    points: Counter
    purchases: Counter
    dlq: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> LoyaltyMetrics:
        m = cls(
            points=Counter("loyalty_points_awarded", "Points written to the ledger, by rule (reversals negative "
                           "rules counted by absolute value).", ["rule"], registry=registry),
            purchases=Counter("loyalty_purchases", "Purchases seen, first or repeat.", ["kind"], registry=registry),
            dlq=dlq_counter(registry),
        )
        for rule in RULES:
            m.points.labels(rule=rule)
        for kind in ("first", "repeat"):
            m.purchases.labels(kind=kind)
        return m
