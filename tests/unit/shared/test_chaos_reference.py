"""The chaos audit's reference for points: the rules applied once per order, written apart from loyalty."""

from __future__ import annotations

from decimal import Decimal

from feedback_shared.events import OrderReturned, PurchaseRecorded
from feedback_shared.topics import ALL_TOPICS
from feedback_tools.chaos import CONSUMERS, expected_balances


def buy(order: str, customer: str, amount: str) -> PurchaseRecorded:
    return PurchaseRecorded(order_id=order, customer_id=customer, amount=Decimal(amount), currency="EUR")


def give_back(order: str, customer: str, amount: str) -> OrderReturned:
    return OrderReturned(order_id=order, customer_id=customer, amount=Decimal(amount), currency="EUR")


def test_first_purchase_earns_nothing_later_ones_earn_the_floor_of_the_amount() -> None:
    assert expected_balances([buy("o1", "a", "10.99"), buy("o2", "a", "20.99"), buy("o3", "a", "5.50")]) == {
        "a": 25}


def test_a_redelivered_purchase_or_return_counts_once() -> None:
    events = [buy("o1", "a", "10"), buy("o2", "a", "30"), buy("o2", "a", "30"), give_back("o2", "a", "30"),
              give_back("o2", "a", "30")]
    assert expected_balances(events) == {"a": 0}


def test_a_return_never_takes_the_balance_below_zero() -> None:
    events = [buy("o1", "a", "10"), buy("o2", "a", "30"), buy("o3", "a", "40"), give_back("o3", "a", "40"),
              give_back("o2", "a", "30")]
    assert expected_balances(events) == {"a": 0}


def test_a_return_before_its_purchase_takes_nothing_back() -> None:
    events = [buy("o1", "a", "10"), give_back("o2", "a", "30"), buy("o2", "a", "30")]
    assert expected_balances(events) == {"a": 30}


def test_every_consumed_topic_is_a_registry_topic() -> None:
    assert set(CONSUMERS) <= {spec.name for spec in ALL_TOPICS}
