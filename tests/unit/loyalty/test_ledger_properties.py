"""Property: any sequence of purchases, returns, reviews and redeliveries (same event again, or the same
business event under a new id), cut into batches anyhow, leaves every balance equal to the rules applied
once per business event, one event at a time."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from feedback_shared.events import (
    Event,
    FeedbackScored,
    OrderReturned,
    PurchaseRecorded,
    SentimentResult,
)
from loyalty.metrics import LoyaltyMetrics
from loyalty.points import PointsRules
from loyalty.service import LoyaltyService
from tests.unit.loyalty.fakes import FakeLoyaltyStore

RULES = PointsRules(review_bonus=25, surprise_probability=0.0)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
CUSTOMERS = ("ana", "bo")
SENTIMENT = SentimentResult(label="neutral", score=0.0, probabilities={"negative": 0.2, "neutral": 0.6,
                                                                        "positive": 0.2}, confidence=0.6)

op = st.one_of(
    st.tuples(st.just("purchase"), st.integers(0, 7), st.sampled_from(CUSTOMERS),
              st.decimals(min_value=0, max_value=500, places=2)),
    st.tuples(st.just("return"), st.integers(0, 7)),
    st.tuples(st.just("review"), st.integers(0, 7), st.sampled_from(CUSTOMERS)),
    st.tuples(st.just("redeliver"), st.integers(0, 1000)),
    st.tuples(st.just("resend_with_new_id"), st.integers(0, 1000)),
)


def make_event(kind: str, order: int, customer: str, amount: Decimal, at: datetime) -> Event:
    order_id = f"o{order}"
    if kind == "purchase":
        return PurchaseRecorded(order_id=order_id, customer_id=customer, amount=amount, currency="EUR", occurred_at=at)
    if kind == "return":
        return OrderReturned(order_id=order_id, customer_id=customer, amount=amount, currency="EUR", occurred_at=at)
    return FeedbackScored(source="google", kind="review", external_id=f"r-{uuid.uuid4()}", customer_id=customer,
                          text="ok", order_id=order_id, feedback_event_id=uuid.uuid4(), sentiment=SENTIMENT,
                          model_version="t", occurred_at=at)


class Reference:
    """The rules, applied once per business event, written independently of the service."""

    def __init__(self) -> None:
        self.balance: dict[str, int] = defaultdict(int)
        self.purchases: dict[str, int] = defaultdict(int)
        self.orders: dict[str, tuple[str, int]] = {}  # order -> (customer, points still held)
        self.returned: set[str] = set()
        self.reviewed: set[tuple[str, str]] = set()
        self.claims: set[tuple[str, str]] = set()  # reviewed before bought: paid when bought

    def apply(self, event: Event) -> None:
        if isinstance(event, PurchaseRecorded):
            if event.order_id in self.orders:
                return
            self.purchases[event.customer_id] += 1
            points = 0
            if self.purchases[event.customer_id] >= 2:
                points = int(event.amount.to_integral_value(rounding=ROUND_FLOOR))
            self.orders[event.order_id] = (event.customer_id, points)
            self.balance[event.customer_id] += points
            key = (event.customer_id, event.order_id)
            if key in self.claims and key not in self.reviewed:
                self.reviewed.add(key)
                self.balance[event.customer_id] += 25
        elif isinstance(event, OrderReturned):
            if event.order_id in self.returned:
                return
            self.returned.add(event.order_id)
            if event.order_id not in self.orders:
                return
            customer, held = self.orders[event.order_id]
            take = min(held, max(self.balance[customer], 0))
            self.balance[customer] -= take
            self.orders[event.order_id] = (customer, held - take)
        elif isinstance(event, FeedbackScored) and event.customer_id and event.order_id:
            key = (event.customer_id, event.order_id)
            bought = self.orders.get(event.order_id, ("", 0))[0] == event.customer_id
            if not bought:
                self.claims.add(key)
            elif key not in self.reviewed:
                self.reviewed.add(key)
                self.balance[event.customer_id] += 25


@settings(max_examples=300, deadline=None)
@given(st.lists(op, min_size=1, max_size=40), st.lists(st.integers(1, 8), min_size=1, max_size=10))
def test_balances_equal_the_rules_applied_once(ops: list[tuple], cuts: list[int]) -> None:  # type: ignore[type-arg]
    store = FakeLoyaltyStore()
    service = LoyaltyService(store, RULES, LoyaltyMetrics.create(CollectorRegistry()), clock=lambda: T0)
    reference = Reference()
    delivered: list[Event] = []
    owner: dict[int, str] = {}
    for step, item in enumerate(ops):
        at = T0 + timedelta(minutes=step)
        if item[0] in ("redeliver", "resend_with_new_id"):
            if not delivered:
                continue
            event = delivered[item[1] % len(delivered)]
            if item[0] == "resend_with_new_id":
                event = event.model_copy(update={"event_id": uuid.uuid4()})
        elif item[0] == "purchase":
            owner.setdefault(item[1], item[2])
            event = make_event("purchase", item[1], owner[item[1]], item[3], at)
        elif item[0] == "return":
            event = make_event("return", item[1], owner.get(item[1], "ana"), Decimal(1), at)
        else:
            event = make_event("review", item[1], item[2], Decimal(0), at)
        reference.apply(event)
        delivered.append(event)
    # Then the service, a batch at a time (sizes from ``cuts``, in turn).
    start = 0
    for n in range(len(delivered)):
        if start >= len(delivered):
            break
        size = cuts[n % len(cuts)]
        service.handle_batch(delivered[start:start + size])  # type: ignore[arg-type]
        start += size

    for customer in CUSTOMERS:
        assert store.balance(customer) == reference.balance[customer]
        assert store.ledger_sum(customer) == reference.balance[customer]
        assert reference.balance[customer] >= 0  # the clamp policy

    # Everything delivered once more, one at a time and all at once, changes nothing.
    before = dict(store.ledger.entries_by_id)
    for event in delivered:
        service.handle_batch([event])  # type: ignore[list-item]
    service.handle_batch(delivered)  # type: ignore[arg-type]
    assert store.ledger.entries_by_id == before
