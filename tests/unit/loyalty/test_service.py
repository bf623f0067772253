"""The loyalty service's effects, on the in-memory store: follow-ups, thank-yous, expiry, tiers, gauges."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry

from feedback_shared.events import (
    CustomerProfileUpdated,
    CustomerThanked,
    FeedbackScored,
    FollowUpDue,
    PurchaseRecorded,
    SentimentResult,
    TierChanged,
)
from loyalty.metrics import LoyaltyMetrics
from loyalty.points import PointsRules
from loyalty.service import Effects, LoyaltyService, pseudonym
from tests.unit.loyalty.fakes import FakeStore

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def service(rules: PointsRules, clock: list[datetime]) -> tuple[LoyaltyService, FakeStore, CollectorRegistry]:
    store, registry = FakeStore(), CollectorRegistry()
    return LoyaltyService(store, rules, LoyaltyMetrics.create(registry), clock=lambda: clock[0]), store, registry


def purchase(order: str, amount: str, at: datetime, customer: str = "c-1") -> PurchaseRecorded:
    return PurchaseRecorded(order_id=order, customer_id=customer, amount=Decimal(amount), currency="EUR", occurred_at=at)


def test_purchase_schedules_a_follow_up_within_24_hours_and_thanks_by_preferred_name() -> None:
    svc, _, _ = service(PointsRules(surprise_probability=0), [T0])
    svc.on_profile(CustomerProfileUpdated(customer_id="c-1", preferred_name="Ms. Petrosyan"))
    first = svc.on_commerce(purchase("o-1", "30", T0))
    [followup] = [n for n in first.notifications if isinstance(n, FollowUpDue)]
    assert followup.due_at == T0 + timedelta(hours=24) and followup.order_id == "o-1"
    assert not [n for n in first.notifications if isinstance(n, CustomerThanked)]  # no points, no thanks
    second = svc.on_commerce(purchase("o-2", "45.50", T0 + timedelta(days=1)))
    [thanks] = [n for n in second.notifications if isinstance(n, CustomerThanked)]
    assert thanks.addressed_to == "Ms. Petrosyan" and thanks.points == 45
    assert "Ms. Petrosyan" in thanks.message
    # Redelivered: the same follow-up and thank-you ids, nothing credited twice.
    again = svc.on_commerce(purchase("o-2", "45.50", T0 + timedelta(days=1)))
    assert {n.event_id for n in again.notifications} == {n.event_id for n in second.notifications}


def test_tier_changes_are_announced_and_joining_at_the_bottom_is_not() -> None:
    svc, store, _ = service(PointsRules(surprise_probability=0), [T0])
    assert not [e for e in svc.on_commerce(purchase("o-1", "10", T0)).points if isinstance(e, TierChanged)]
    taken_in = T0 + timedelta(minutes=3)
    cause = purchase("o-2", "700", T0).model_copy(update={"ingested_at": taken_in})
    [change] = [e for e in svc.on_commerce(cause).points if isinstance(e, TierChanged)]
    assert (change.previous_tier, change.tier, change.points_earned) == ("bronze", "silver", 700)
    assert change.ingested_at == taken_in  # the cause's, for the erasure check downstream
    assert store.customer("c-1").tier == "silver"


def test_inactive_balances_expire_once_when_the_rules_say_so() -> None:
    clock = [T0]
    svc, store, registry = service(PointsRules(surprise_probability=0, expiry_inactive_days=365), clock)
    svc.on_commerce(purchase("o-1", "10", T0))
    svc.on_commerce(purchase("o-2", "80", T0))
    clock[0] = T0 + timedelta(days=300)
    assert svc.expire_inactive().points == []
    clock[0] = T0 + timedelta(days=400)
    [expired] = svc.expire_inactive().points
    assert (expired.rule, expired.points, expired.balance) == ("expiry", -80, 0)
    assert store.customer("c-1").balance == 0 == store.ledger_sum("c-1")
    assert svc.expire_inactive().points == []
    assert registry.get_sample_value("loyalty_points_awarded_total", {"rule": "expiry"}) == 80


def test_repeat_business_gauges() -> None:
    registry = CollectorRegistry()
    metrics = LoyaltyMetrics.create(registry)
    metrics.set_figures({"EUR": {"purchases": Decimal(4), "repeat_purchases": Decimal(3),
                                 "revenue": Decimal(200), "repeat_revenue": Decimal(150)}})
    assert registry.get_sample_value("loyalty_repeat_purchase_ratio", {"currency": "EUR"}) == 0.75
    assert registry.get_sample_value("loyalty_repeat_revenue_share", {"currency": "EUR"}) == 0.75


def test_events_from_before_an_erasure_arriving_after_it_stay_off_the_real_id_and_announce_nothing() -> None:
    """Erasure has its own topic: a purchase or review taken in just before the request can arrive just
    after the erasure. It must not bring the customer back under their id, nor message them."""
    rules = PointsRules(surprise_probability=0)
    svc, store, registry = service(rules, [T0])
    requested = T0 + timedelta(minutes=5)
    svc.on_commerce(purchase("o-1", "30", T0))  # before the erasure, in time
    # The erasure as anonymise_customer leaves it: ledger and purchases under the pseudonym, a mark.
    hidden = pseudonym("c-1")
    store.purchases["o-1"]["customer_id"] = hidden
    store.customers.pop("c-1", None)
    store.erasures["c-1"] = requested

    late = purchase("o-2", "40", T0 + timedelta(minutes=1)).model_copy(
        update={"ingested_at": requested - timedelta(seconds=1)})
    assert svc.on_commerce(late) == Effects()
    assert store.customer("c-1").balance == 0 and "c-1" not in store.customers
    assert store.purchases["o-2"]["customer_id"] == hidden and store.purchases["o-2"]["ordinal"] == 2
    assert store.customer(hidden).balance == 40  # the second purchase's points, kept for audit
    assert svc.on_commerce(late) == Effects() and store.customer(hidden).balance == 40  # redelivered: once

    review = FeedbackScored(
        source="google", kind="review", external_id="r-1", customer_id="c-1", order_id="o-2", text="ok",
        feedback_event_id=uuid.uuid4(), model_version="t", language="en",
        sentiment=SentimentResult(label="positive", score=0.8, confidence=0.9,
                                  probabilities={"negative": 0.05, "neutral": 0.05, "positive": 0.9}),
        needs=[], ingested_at=requested - timedelta(seconds=2))
    assert svc.on_scored(review) == Effects()
    assert store.customer(hidden).balance == 40 and "c-1" not in store.customers
    assert registry.get_sample_value("loyalty_erased_late_total", {"type": "purchase.recorded"}) == 2
    assert registry.get_sample_value("loyalty_erased_late_total", {"type": "feedback.scored"}) == 1

    # The customer comes back after the request: a new start under their id, announced as usual.
    again = purchase("o-3", "25", requested + timedelta(hours=1)).model_copy(
        update={"ingested_at": requested + timedelta(hours=1)})
    effects = svc.on_commerce(again)
    assert [n for n in effects.notifications if isinstance(n, FollowUpDue)]
    assert store.purchases["o-3"]["customer_id"] == "c-1" and store.purchases["o-3"]["ordinal"] == 1
