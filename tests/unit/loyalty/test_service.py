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
    OrderReturned,
    PurchaseRecorded,
    SentimentResult,
    TierChanged,
)
from loyalty.metrics import LoyaltyMetrics
from loyalty.points import PointsRules
from loyalty.service import Effects, LoyaltyService, pseudonym
from tests.unit.loyalty.fakes import FakeLoyaltyStore

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def service(rules: PointsRules, clock: list[datetime]) -> tuple[LoyaltyService, FakeLoyaltyStore, CollectorRegistry]:
    store, registry = FakeLoyaltyStore(), CollectorRegistry()
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
    assert store.accounts.account("c-1").tier == "silver"


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
    assert store.balance("c-1") == 0 == store.ledger_sum("c-1")
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
    # The erasure: ledger and purchases under the pseudonym, a mark with the request's time.
    hidden = pseudonym("c-1")
    svc.anonymise_customer("c-1", requested)

    late = purchase("o-2", "40", T0 + timedelta(minutes=1)).model_copy(
        update={"ingested_at": requested - timedelta(seconds=1)})
    assert svc.on_commerce(late) == Effects()
    assert store.balance("c-1") == 0 and "c-1" not in store.accounts.customers
    records = store.purchases.records
    assert records["o-2"].customer_id == hidden and records["o-2"].ordinal == 2
    assert store.balance(hidden) == 40  # the second purchase's points, kept for audit
    assert svc.on_commerce(late) == Effects() and store.balance(hidden) == 40  # redelivered: once

    review = FeedbackScored(
        source="google", kind="review", external_id="r-1", customer_id="c-1", order_id="o-2", text="ok",
        feedback_event_id=uuid.uuid4(), model_version="t", language="en",
        sentiment=SentimentResult(label="positive", score=0.8, confidence=0.9,
                                  probabilities={"negative": 0.05, "neutral": 0.05, "positive": 0.9}),
        needs=[], ingested_at=requested - timedelta(seconds=2))
    assert svc.on_scored(review) == Effects()
    assert store.balance(hidden) == 40 and "c-1" not in store.accounts.customers
    assert registry.get_sample_value("loyalty_erased_late_total", {"type": "purchase.recorded"}) == 2
    assert registry.get_sample_value("loyalty_erased_late_total", {"type": "feedback.scored"}) == 1

    # The customer comes back after the request: a new start under their id, announced as usual.
    again = purchase("o-3", "25", requested + timedelta(hours=1)).model_copy(
        update={"ingested_at": requested + timedelta(hours=1)})
    effects = svc.on_commerce(again)
    assert [n for n in effects.notifications if isinstance(n, FollowUpDue)]
    assert records["o-3"].customer_id == "c-1" and records["o-3"].ordinal == 1


# ---- the batch: what it costs, and redelivery ------------------------------------------------------
def mixed_batch(size: int) -> list[PurchaseRecorded | OrderReturned]:
    """``size`` events over a few customers: purchases, and a return of every third order."""
    batch: list[PurchaseRecorded | OrderReturned] = []
    for i in range(size):
        order = purchase(f"o-{size}-{i}", f"{10 + i}", T0 + timedelta(minutes=i), customer=f"c-{i % 4}")
        batch.append(order)
        if i % 3 == 2:
            batch.append(OrderReturned(**order.model_dump(exclude={"event_type", "event_id"})))
    return batch[:size]


def test_a_batch_costs_the_same_few_store_calls_whatever_its_size() -> None:
    costs = []
    for size in (1, 10, 200):
        svc, store, registry = service(PointsRules(surprise_probability=0), [T0])
        svc.handle_batch(mixed_batch(size))
        assert (registry.get_sample_value("loyalty_events_handled_total", {"type": "purchase.recorded"}) or 0) >= 1
        costs.append(store.total_calls())
    # Reads: accounts (with profiles and erasure marks), purchases, ledger; then one write (a transaction).
    assert costs[0] == costs[1] == costs[2] == {"accounts.accounts_by_id": 1, "purchases.seen": 1, "ledger.seen": 1,
                                                "store.write": 1}, costs


def test_a_batch_that_moves_no_points_reads_nothing() -> None:
    svc, store, _ = service(PointsRules(), [T0])
    anonymous = FeedbackScored(source="x", kind="mention", external_id="m-1", text="meh", model_version="t",
                               feedback_event_id=uuid.uuid4(), sentiment=SentimentResult(
                                   label="neutral", score=0.0, confidence=0.6,
                                   probabilities={"negative": 0.2, "neutral": 0.6, "positive": 0.2}))
    assert svc.handle_batch([anonymous, anonymous.model_copy(update={"customer_id": "c-1"})]) == Effects()
    assert store.total_calls() == {}


def test_a_redelivered_batch_writes_nothing_twice_and_announces_the_same_ids() -> None:
    svc, store, registry = service(PointsRules(surprise_probability=0, welcome_points=5), [T0])
    batch = mixed_batch(12)
    first = svc.handle_batch(batch)
    ledger, balances = dict(store.ledger.entries_by_id), {c: store.balance(c) for c in ("c-0", "c-1", "c-2", "c-3")}
    writes = store.calls["write"]
    again = svc.handle_batch(batch)
    assert store.calls["write"] == writes  # nothing new: not even a transaction
    assert store.ledger.entries_by_id == ledger
    assert {c: store.balance(c) for c in balances} == balances
    assert all(store.balance(c) == store.ledger_sum(c) for c in balances)
    assert {e.event_id for e in again.points} <= {e.event_id for e in first.points}
    assert {e.event_id for e in again.notifications} == {e.event_id for e in first.notifications}
    assert registry.get_sample_value("loyalty_purchases_total", {"kind": "first"}) == 4  # counted once


def test_a_write_that_meets_a_concurrent_one_is_decided_again_on_fresh_state() -> None:
    svc, store, _ = service(PointsRules(surprise_probability=0), [T0])
    svc.on_commerce(purchase("o-1", "10", T0))
    svc.on_commerce(purchase("o-2", "100", T0))
    assert store.balance("c-1") == 100
    # A redemption lands between the batch's reads and its write: the return must clamp to what is left.
    store.before_write.append(lambda: svc.redeem("c-1", 70, "gift_card", "k-1"))
    svc.handle_batch([OrderReturned(order_id="o-2", customer_id="c-1", amount=Decimal(100), currency="EUR")])
    assert store.balance("c-1") == 0 == store.ledger_sum("c-1")
    assert store.calls["write"] == 4  # the two purchases, the conflict, the retry


def test_a_review_claim_and_the_purchase_that_pays_it_decided_at_once_still_pay_the_bonus() -> None:
    """The two agents (commerce, scored feedback) each run their own transaction. The review of an order
    not yet recorded files a claim; if the purchase commits between that batch's reads and its write, the
    claim batch must decide again (it sees the purchase and pays), or the bonus is lost to write skew."""
    svc, store, _ = service(PointsRules(surprise_probability=0), [T0])
    svc.on_commerce(purchase("o-1", "10", T0))
    review = FeedbackScored(
        source="google", kind="review", external_id="r-9", customer_id="c-1", order_id="o-2", text="ok",
        feedback_event_id=uuid.uuid4(), model_version="t", language="en",
        sentiment=SentimentResult(label="positive", score=0.8, confidence=0.9,
                                  probabilities={"negative": 0.05, "neutral": 0.05, "positive": 0.9}))
    store.before_write.append(lambda: svc.on_commerce(purchase("o-2", "100", T0)))
    svc.on_scored(review)
    rules = sorted(e.rule for e in store.ledger.entries_by_id.values())
    assert rules == ["repeat_purchase", "review_bonus"]
    assert store.balance("c-1") == 125 == store.ledger_sum("c-1")
    assert store.purchases.claims == {}  # paid, not left waiting


def test_a_review_claim_alone_writes_the_account_and_no_points() -> None:
    svc, store, _ = service(PointsRules(surprise_probability=0), [T0])
    review = FeedbackScored(
        source="google", kind="review", external_id="r-8", customer_id="c-2", order_id="o-9", text="ok",
        feedback_event_id=uuid.uuid4(), model_version="t", language="en",
        sentiment=SentimentResult(label="positive", score=0.8, confidence=0.9,
                                  probabilities={"negative": 0.05, "neutral": 0.05, "positive": 0.9}))
    assert svc.on_scored(review) == Effects()
    assert store.balance("c-2") == 0 and store.ledger.entries_by_id == {}
    assert len(store.purchases.claims) == 1
    # The purchase comes later: the claim is paid then, once.
    svc.on_commerce(purchase("o-9", "5", T0, customer="c-2"))
    svc.on_commerce(purchase("o-9", "5", T0, customer="c-2"))
    assert [e.rule for e in store.ledger.entries_by_id.values()] == ["review_bonus"]
    assert store.balance("c-2") == 25
