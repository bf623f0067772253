"""Loyalty's stores on the real database: a batch in a few round trips and one transaction, a redelivered
batch writes nothing, a write that meets a concurrent one writes nothing at all, a repeated redemption gets
its first answer even when the balance no longer covers it, and the erasure leaves its mark."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pymongo import MongoClient

from feedback_shared.events import FeedbackScored, OrderLine, OrderReturned, PurchaseRecorded, SentimentResult
from feedback_shared.mongo import CommandCounter
from feedback_tools.devstack import EmbeddedStack
from loyalty.decide import AccountChange
from loyalty.domain import Account, InsufficientBalance, LedgerEntry, Profile, WriteConflict
from loyalty.metrics import LoyaltyMetrics
from loyalty.points import PointsRules
from loyalty.service import LoyaltyService, pseudonym
from loyalty.stores import MongoLoyaltyStore

pytestmark = pytest.mark.integration
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(stack: EmbeddedStack) -> Iterator[tuple[MongoLoyaltyStore, CollectorRegistry]]:
    registry = CollectorRegistry()
    client: MongoClient[dict[str, Any]] = MongoClient(stack.config.mongo_url, retryWrites=False, tz_aware=True,
                                                      event_listeners=[CommandCounter(registry)])
    name = f"loyalty_repo_{uuid.uuid4().hex[:8]}"
    store = MongoLoyaltyStore(client, client[name])
    store.ensure_indexes()
    yield store, registry
    client.drop_database(name)
    client.close()


def commands(registry: CollectorRegistry) -> float:
    return sum(s.value for m in registry.collect() for s in m.samples if s.name == "mongo_commands_total")


def _entry(entry_id: str, points: int, rule: str = "purchase") -> LedgerEntry:
    return LedgerEntry(entry_id=entry_id, customer_id="cy", source_event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, entry_id)),
                       rule=rule, points=points, at=T0)


def buy(order: str, customer: str, amount: str, at: datetime = T0) -> PurchaseRecorded:
    return PurchaseRecorded(order_id=order, customer_id=customer, amount=Decimal(amount), currency="EUR",
                            occurred_at=at, items=[OrderLine(sku=f"sku-{order}")])


def test_a_batch_costs_a_few_round_trips_whatever_its_size_and_a_redelivery_writes_nothing(
        db: tuple[MongoLoyaltyStore, CollectorRegistry]) -> None:
    store, registry = db
    service = LoyaltyService(store, PointsRules(surprise_probability=0), LoyaltyMetrics.create(CollectorRegistry()),
                             clock=lambda: T0)
    store.accounts.put_profile("b-0", Profile("Ms. Nurlanova", "kk"))
    costs = []
    for size in (4, 60):
        batch: list[PurchaseRecorded | OrderReturned] = [
            buy(f"o-{size}-{i}", f"b-{i % 5}", f"{10 + i}", T0 + timedelta(seconds=i)) for i in range(size)]
        batch.append(OrderReturned(order_id=f"o-{size}-{size - 1}", customer_id=f"b-{(size - 1) % 5}",
                                   amount=Decimal(1), currency="EUR"))
        before = commands(registry)
        effects = service.handle_batch(batch)
        costs.append(commands(registry) - before)
        assert effects.notifications and (effects.points or size == 4)  # 4 first purchases earn nothing
    # Seven plain indexed reads (accounts with profiles and erasures; the purchases of the orders, of the
    # buyers and their claims; the ledger by event, by returned order and by customer), then insert,
    # insert, update and commit in one transaction: the same for 5 events as for 61.
    assert costs == [11, 11], costs
    for c in (f"b-{i}" for i in range(5)):
        assert store.accounts.account(c).balance == store.ledger.ledger_sum(c)
    ledger = store.ledger.ledger.count_documents({})

    before = commands(registry)
    again = service.handle_batch(batch)
    assert commands(registry) - before == 7  # the reads; nothing to write
    assert store.ledger.ledger.count_documents({}) == ledger
    assert {e.event_id for e in again.points} <= {e.event_id for e in effects.points}

    # A review: paid for an order the customer bought, once; not for someone else's.
    scored = FeedbackScored(source="google", kind="review", external_id="r-1", customer_id="b-0", text="ok",
                            order_id="o-60-0", feedback_event_id=uuid.uuid4(), model_version="t",
                            sentiment=SentimentResult(label="positive", score=0.8, confidence=0.9,
                                                      probabilities={"negative": 0.05, "neutral": 0.05,
                                                                     "positive": 0.9}))
    balance = store.accounts.account("b-0").balance
    service.handle_batch([scored, scored.model_copy(update={"event_id": uuid.uuid4()}),
                          scored.model_copy(update={"product_id": "sku-o-60-1", "order_id": None}),
                          scored.model_copy(update={"order_id": "o-60-1"})])
    assert store.accounts.account("b-0").balance == balance + 25


def test_a_write_that_meets_one_made_since_writes_nothing_at_all(db: tuple[MongoLoyaltyStore, CollectorRegistry]) -> None:
    store, _ = db
    store.apply(_entry("credit", 50))
    loaded = store.accounts.accounts_by_id(["cy"])["cy"]
    store.apply(_entry("redeem-1", -20, rule="redeem"), require_balance=True)  # the balance moves since
    new = _entry("e-new", 10)
    with pytest.raises(WriteConflict):
        store.write([], [new], [AccountChange(loaded, points=10, last_activity_at=T0)])
    assert store.ledger.ledger.find_one({"_id": "e-new"}) is None  # the insert went with the transaction
    assert store.accounts.account("cy").balance == 30 == store.ledger.ledger_sum("cy")
    fresh = store.accounts.accounts_by_id(["cy"])["cy"]
    store.write([], [new], [AccountChange(fresh, points=10, last_activity_at=T0)])
    with pytest.raises(WriteConflict):  # the same entry again (another replica): nothing
        store.write([], [new], [AccountChange(store.accounts.account("cy"), points=10)])
    assert store.accounts.account("cy").balance == 40 == store.ledger.ledger_sum("cy")
    # A new account created since it was read as missing: a conflict too, not a second balance.
    with pytest.raises(WriteConflict):
        store.write([], [], [AccountChange(Account("cy"), points=5)])
    assert store.accounts.account("cy").balance == 40


def test_a_repeated_redemption_answers_as_the_first_time_even_when_the_balance_has_gone(
        db: tuple[MongoLoyaltyStore, CollectorRegistry]) -> None:
    store, _ = db
    first_credit = store.apply(_entry("credit", 50))
    assert (first_credit.created, first_credit.balance) == (True, 50)
    again_credit = store.apply(_entry("credit", 50))
    assert (again_credit.created, again_credit.balance) == (False, 50)
    first = store.apply(_entry("redeem-1", -50, rule="redeem"), require_balance=True)
    assert (first.created, first.balance) == (True, 0)
    again = store.apply(_entry("redeem-1", -50, rule="redeem"), require_balance=True)
    assert (again.created, again.entry.points) == (False, -50)
    with pytest.raises(InsufficientBalance):
        store.apply(_entry("redeem-2", -1, rule="redeem"), require_balance=True)
    assert store.accounts.account("cy").balance == store.ledger.ledger_sum("cy") == 0


def test_an_erasure_leaves_a_mark_with_the_requests_time(db: tuple[MongoLoyaltyStore, CollectorRegistry]) -> None:
    store, _ = db
    service = LoyaltyService(store, PointsRules(surprise_probability=0), LoyaltyMetrics.create(CollectorRegistry()))
    service.handle_batch([buy("o-erase", "cz", "10")])
    store.accounts.put_profile("cz", Profile("Mr. Z", None))
    assert store.accounts.accounts_by_id(["cz"])["cz"].profile == Profile("Mr. Z", None)
    service.anonymise_customer("cz", T0)
    [seen] = store.accounts.accounts_by_id(["cz"]).values()
    assert (seen.erased_at, seen.exists, seen.profile) == (T0, False, None)
    assert store.purchases.purchases.find_one({"_id": "o-erase"})["customer_id"] == pseudonym("cz")  # type: ignore[index]
    service.anonymise_customer("cz", T0)  # redelivered: the same mark
    assert store.accounts.erasures.count_documents({}) == 1


def test_a_review_before_its_purchase_is_paid_when_the_purchase_comes(
        db: tuple[MongoLoyaltyStore, CollectorRegistry]) -> None:
    store, _ = db
    service = LoyaltyService(store, PointsRules(surprise_probability=0), LoyaltyMetrics.create(CollectorRegistry()))
    scored = FeedbackScored(source="google", kind="review", external_id="r-early", customer_id="cw", text="ok",
                            order_id="o-w2", feedback_event_id=uuid.uuid4(), model_version="t",
                            sentiment=SentimentResult(label="neutral", score=0.0, confidence=0.6,
                                                      probabilities={"negative": 0.2, "neutral": 0.6,
                                                                     "positive": 0.2}))
    service.handle_batch([scored])
    service.handle_batch([scored])  # redelivered: one claim
    assert store.purchases.claims.count_documents({"customer_id": "cw"}) == 1
    assert store.accounts.account("cw").balance == 0
    service.handle_batch([buy("o-w1", "cw", "10"), buy("o-w2", "cw", "40")])
    assert store.accounts.account("cw").balance == 65 == store.ledger.ledger_sum("cw")
    assert store.purchases.claims.count_documents({}) == 0
    service.handle_batch([scored, buy("o-w2", "cw", "40")])  # everything again: nothing more
    assert store.accounts.account("cw").balance == 65


def test_a_claim_and_its_purchase_decided_at_the_same_moment_pay_the_bonus_once(
        db: tuple[MongoLoyaltyStore, CollectorRegistry]) -> None:
    """The scored-feedback agent loads (no purchase of the order yet), then the commerce agent records
    the purchase (no claim yet) before the first writes: without a write both meet on, the claim would
    wait for a purchase already recorded and the bonus would never be paid."""
    store, _ = db
    rules = PointsRules(surprise_probability=0)
    reviews = LoyaltyService(store, rules, LoyaltyMetrics.create(CollectorRegistry()))
    commerce = LoyaltyService(store, rules, LoyaltyMetrics.create(CollectorRegistry()))
    commerce.handle_batch([buy("o-r1", "cr", "10")])
    scored = FeedbackScored(source="google", kind="review", external_id="r-race", customer_id="cr", text="ok",
                            order_id="o-r2", feedback_event_id=uuid.uuid4(), model_version="t",
                            sentiment=SentimentResult(label="positive", score=0.8, confidence=0.9,
                                                      probabilities={"negative": 0.05, "neutral": 0.05,
                                                                     "positive": 0.9}))
    loads: list[int] = []
    load = reviews.load

    def load_then_the_purchase_commits(batch: Any) -> Any:
        state = load(batch)
        loads.append(len(state.purchases))
        if len(loads) == 1:
            commerce.handle_batch([buy("o-r2", "cr", "40")])
        return state

    reviews.load = load_then_the_purchase_commits  # type: ignore[method-assign]
    reviews.handle_batch([scored])
    assert loads == [0, 1]  # decided again, on the purchase
    rules_paid = sorted(d["rule"] for d in store.ledger.ledger.find({"customer_id": "cr"}))
    assert rules_paid == ["repeat_purchase", "review_bonus"]
    assert store.accounts.account("cr").balance == 65 == store.ledger.ledger_sum("cr")
    assert store.purchases.claims.count_documents({"customer_id": "cr"}) == 0
