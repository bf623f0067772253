"""The alerts repository's queries on the real database: the outbox claim and the open-case lookup, each
an indexed query per key (no $or, which the embedded database answers with a full scan), and claims by
conditional update rather than findAndModify (another full scan there)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient

from alerts.repository import AlertsRepository
from feedback_shared.devstack import EmbeddedStack

pytestmark = pytest.mark.integration
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def repo(stack: EmbeddedStack) -> Iterator[AlertsRepository]:
    client: MongoClient[dict[str, Any]] = MongoClient(stack.config.mongo_url)
    name = f"alerts_repo_{uuid.uuid4().hex[:8]}"
    repository = AlertsRepository(client[name])
    repository.ensure_indexes()
    yield repository
    client.drop_database(name)
    client.close()


def test_claim_takes_due_pending_first_then_expired_leases_never_live_ones(repo: AlertsRepository) -> None:
    lease = timedelta(seconds=60)
    repo.enqueue("later", {"alert_id": "a"}, T0 + timedelta(minutes=5))
    repo.enqueue("due", {"alert_id": "a"}, T0)
    first = repo.claim_due(T0, lease)
    assert first is not None and first["_id"] == "due" and first["attempts"] == 1 and not first["resumed"]
    # Its lease is live: nobody else can take it, and "later" is not due yet.
    assert repo.claim_due(T0 + timedelta(seconds=30), lease) is None
    # The worker died: once the lease expires, another claims it again (a second attempt).
    again = repo.claim_due(T0 + timedelta(seconds=61), lease)
    assert again is not None and again["_id"] == "due" and again["attempts"] == 2 and again["resumed"]
    repo.mark_sent("due", T0 + timedelta(seconds=62))
    assert repo.claim_due(T0 + timedelta(minutes=4), lease) is None
    later = repo.claim_due(T0 + timedelta(minutes=5), lease)
    assert later is not None and later["_id"] == "later" and not later["resumed"]


def test_batch_claims_take_the_oldest_and_concurrent_workers_never_share_a_delivery(repo: AlertsRepository) -> None:
    lease = timedelta(seconds=60)
    for i in range(40):
        repo.enqueue(f"d{i:02d}", {"alert_id": "a"}, T0 + timedelta(seconds=i))
    first = repo.claim_due_many(T0 + timedelta(seconds=2), lease, limit=10)
    assert [d["_id"] for d in first] == ["d00", "d01", "d02"]  # only the due ones, oldest first
    assert all(d["status"] == "sending" and d["attempts"] == 1 for d in first)

    # Four workers race over the rest, ten at a time, until none is left: each delivery is claimed once.
    now = T0 + timedelta(minutes=1)

    def worker(_: int) -> list[str]:
        taken: list[str] = []
        while batch := repo.claim_due_many(now, lease, limit=10):
            taken += [d["_id"] for d in batch]
        return taken

    with ThreadPoolExecutor(max_workers=4) as pool:
        claimed = [delivery for taken in pool.map(worker, range(4)) for delivery in taken]
    # (A worker whose candidates were all taken by others stops early; a last one takes what is left.)
    claimed += worker(0)
    assert len(claimed) == len(set(claimed))
    assert sorted(claimed) == [f"d{i:02d}" for i in range(3, 40)]


def test_case_history_counts_every_case_of_the_customer(repo: AlertsRepository) -> None:
    for case_id, status, minutes in (("old", "resolved", 1), ("open-1", "open", 2), ("open-2", "acknowledged", 3)):
        assert repo.insert_case({"_id": case_id, "kind": "case", "feedback_event_ids": [f"f-{case_id}"],
                                 "customer_id": "cy", "status": status, "latest": {"text": "x"},
                                 "created_at": T0 + timedelta(minutes=minutes)})
    newest, count = repo.case_history("cy", None)
    assert newest is not None and newest["_id"] == "open-2" and count == 3
    assert repo.case_history("nobody", None) == (None, 0)


def test_open_case_is_the_newest_by_customer_or_thread(repo: AlertsRepository) -> None:
    def case(case_id: str, customer: str | None, thread: str | None, minutes: int, status: str = "open") -> None:
        assert repo.insert_case({"_id": case_id, "kind": "case", "feedback_event_ids": [f"f-{case_id}"],
                                 "customer_id": customer, "thread_id": thread, "status": status,
                                 "created_at": T0 + timedelta(minutes=minutes)})

    case("by-customer", "ana", None, 1)
    case("by-thread", None, "t-9", 2)
    case("closed", "ana", "t-9", 3, status="resolved")
    assert repo.open_case_for("ana", None)["_id"] == "by-customer"  # type: ignore[index]
    assert repo.open_case_for(None, "t-9")["_id"] == "by-thread"  # type: ignore[index]
    assert repo.open_case_for("ana", "t-9")["_id"] == "by-thread"  # type: ignore[index]
    assert repo.open_case_for("bo", None) is None
    assert repo.open_case_for(None, None) is None


def test_sla_due_finds_each_case_once_whichever_clock_ran_out(repo: AlertsRepository) -> None:
    for case_id, target, promise in (("both", -10, -5), ("target", -10, 50), ("promise", None, -5),
                                     ("neither", 10, 20)):
        repo.insert_case({
            "_id": case_id, "kind": "case", "feedback_event_ids": [f"f-{case_id}"], "status": "open",
            "internal_target": None if target is None else T0 + timedelta(minutes=target),
            "promised_by": T0 + timedelta(minutes=promise), "escalated_at": None, "breached_at": None,
        })
    assert sorted(d["_id"] for d in repo.unresolved_due(T0)) == ["both", "promise", "target"]


def test_an_event_is_in_one_case_once_even_when_a_worker_stopped_between_link_and_update(
        repo: AlertsRepository) -> None:
    assert repo.insert_case({"_id": "case-1", "kind": "case", "feedback_event_ids": ["f-1"], "customer_id": "cy",
                             "status": "open", "event_count": 1, "created_at": T0})
    assert not repo.insert_case({"_id": "case-1", "kind": "case", "feedback_event_ids": ["f-1"], "status": "open",
                                 "created_at": T0})  # a redelivery
    # A worker linked f-2 to the case and stopped before updating it: the lookup finds the case, and
    # adding again completes it once.
    repo.case_events.insert_one({"_id": "f-2", "alert_id": "case-1"})
    found = repo.case_with_event("f-2")
    assert found is not None and found["_id"] == "case-1" and "f-2" not in found["feedback_event_ids"]
    assert repo.add_event_to_case("case-1", "f-2", {"text": "again"}, T0)
    assert not repo.add_event_to_case("case-1", "f-2", {"text": "again"}, T0)
    case = repo.get("case-1")
    assert case is not None and case["feedback_event_ids"] == ["f-1", "f-2"] and case["event_count"] == 2
    assert repo.case_with_event("f-unknown") is None


def test_a_database_from_before_case_events_is_moved_over(repo: AlertsRepository) -> None:
    repo.alerts.insert_one({"_id": "old", "kind": "case", "feedback_event_ids": ["o-1", "o-2"], "status": "open",
                            "created_at": T0})
    repo.alerts.create_index("feedback_event_ids", unique=True)
    repo.ensure_indexes()
    assert "feedback_event_ids_1" not in repo.alerts.index_information()
    assert {d["_id"]: d["alert_id"] for d in repo.case_events.find()} == {"o-1": "old", "o-2": "old"}
    found = repo.case_with_event("o-2")
    assert found is not None and found["_id"] == "old"


def test_a_public_negative_counts_once_towards_a_spike_however_often_it_arrives(repo: AlertsRepository) -> None:
    window = timedelta(minutes=10)
    assert repo.count_public_negatives("e1", T0, window) == 1
    assert repo.count_public_negatives("e1", T0 + timedelta(seconds=5), window) == 1  # redelivered
    assert repo.count_public_negatives("e2", T0 + timedelta(minutes=2), window) == 2
    repo.record_public_negative("e2", T0 + timedelta(minutes=3))  # redelivered after a crisis was out
    assert repo.count_public_negatives("e3", T0 + timedelta(minutes=4), window) == 3
    # Items older than the window drop out of the count.
    assert repo.count_public_negatives("e4", T0 + timedelta(minutes=11, seconds=30), window) == 3
