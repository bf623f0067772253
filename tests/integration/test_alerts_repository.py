"""The alerts repository's queries on the real database: the outbox claim and the open-case lookup, each
an indexed query per key (no $or, which the embedded database answers with a full scan)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
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
    assert first is not None and first["_id"] == "due" and first["attempts"] == 1
    # Its lease is live: nobody else can take it, and "later" is not due yet.
    assert repo.claim_due(T0 + timedelta(seconds=30), lease) is None
    # The worker died: once the lease expires, another claims it again (a second attempt).
    again = repo.claim_due(T0 + timedelta(seconds=61), lease)
    assert again is not None and again["_id"] == "due" and again["attempts"] == 2
    repo.mark_sent("due", T0 + timedelta(seconds=62))
    assert repo.claim_due(T0 + timedelta(minutes=4), lease) is None
    later = repo.claim_due(T0 + timedelta(minutes=5), lease)
    assert later is not None and later["_id"] == "later"


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
