"""Loyalty's repository on the real database: a redelivered credit or purchase changes nothing (the
insert fails on its unique id and the first write is read back), and a repeated redemption gets its first
answer even when the balance no longer covers it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pymongo import MongoClient

from feedback_tools.devstack import EmbeddedStack
from loyalty.repository import InsufficientBalance, LedgerEntry, LoyaltyRepository

pytestmark = pytest.mark.integration
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def repo(stack: EmbeddedStack) -> Iterator[LoyaltyRepository]:
    client: MongoClient[dict[str, Any]] = MongoClient(stack.config.mongo_url, retryWrites=False, tz_aware=True)
    name = f"loyalty_repo_{uuid.uuid4().hex[:8]}"
    repository = LoyaltyRepository(client, client[name])
    repository.ensure_indexes()
    yield repository
    client.drop_database(name)
    client.close()


def _entry(entry_id: str, points: int, rule: str = "purchase") -> LedgerEntry:
    return LedgerEntry(entry_id=entry_id, customer_id="cy", source_event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, entry_id)),
                       rule=rule, points=points, at=T0)


def test_a_redelivered_credit_is_read_back_not_applied_again(repo: LoyaltyRepository) -> None:
    first = repo.apply(_entry("e1", 40))
    again = repo.apply(_entry("e1", 40))
    assert (first.created, first.balance) == (True, 40)
    assert (again.created, again.balance, again.entry.points) == (False, 40, 40)
    assert repo.customer("cy").balance == repo.ledger_sum("cy") == 40


def test_a_repeated_redemption_answers_as_the_first_time_even_when_the_balance_has_gone(
        repo: LoyaltyRepository) -> None:
    repo.apply(_entry("credit", 50))
    first = repo.apply(_entry("redeem-1", -50, rule="redeem"), require_balance=True)
    assert (first.created, first.balance) == (True, 0)
    again = repo.apply(_entry("redeem-1", -50, rule="redeem"), require_balance=True)
    assert (again.created, again.entry.points) == (False, -50)
    with pytest.raises(InsufficientBalance):
        repo.apply(_entry("redeem-2", -1, rule="redeem"), require_balance=True)
    assert repo.customer("cy").balance == repo.ledger_sum("cy") == 0


def test_a_purchase_seen_again_keeps_its_first_ordinal_and_amount(repo: LoyaltyRepository) -> None:
    assert repo.record_purchase("o1", "cy", amount=Decimal("10.00"), currency="EUR", at=T0, event_id="a") == (
        1, Decimal("10.00"))
    assert repo.record_purchase("o2", "cy", amount=Decimal("20.00"), currency="EUR", at=T0, event_id="b")[0] == 2
    # A resend with other details: the first record stands.
    assert repo.record_purchase("o1", "cy", amount=Decimal("99.00"), currency="EUR", at=T0, event_id="c") == (
        1, Decimal("10.00"))
    assert repo.record_purchase("o3", "cy", amount=Decimal("5.00"), currency="EUR", at=T0, event_id="d")[0] == 3


def test_an_erasure_leaves_a_mark_with_the_requests_time(repo: LoyaltyRepository) -> None:
    repo.record_purchase("o-erase", "cz", amount=Decimal("10"), currency="EUR", at=T0, event_id="e")
    assert repo.erased_at("cz") is None
    repo.anonymise_customer("cz", "erased-cz", requested_at=T0)
    assert repo.erased_at("cz") == T0
    assert repo.purchases.find_one({"_id": "o-erase"})["customer_id"] == "erased-cz"  # type: ignore[index]
    repo.anonymise_customer("cz", "erased-cz", requested_at=T0)  # redelivered: the same mark
    assert repo.erasures.count_documents({}) == 1 and repo.erased_at("cz") == T0
