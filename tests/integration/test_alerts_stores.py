"""Alerts' stores on the real database: the outbox claim, the bulk reads and writes a batch makes, and
claims by conditional update rather than findAndModify (a full scan on the embedded database)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient

from alerts.decide import CaseUpdate
from alerts.domain import Case, Delivery, Snapshot
from alerts.stores import AlertsStore
from alerts.stores.cases import MongoCaseStore
from alerts.stores.directory import MongoDirectory
from alerts.stores.outbox import MongoOutbox
from alerts.stores.spikes import MongoSpikeCounter
from feedback_tools.devstack import EmbeddedStack

pytestmark = pytest.mark.integration
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(stack: EmbeddedStack) -> Iterator[AlertsStore]:
    client: MongoClient[dict[str, Any]] = MongoClient(stack.config.mongo_url, tz_aware=True)
    name = f"alerts_store_{uuid.uuid4().hex[:8]}"
    alerts_store = AlertsStore.mongo(client[name])
    alerts_store.ensure_indexes()
    yield alerts_store
    client.drop_database(name)
    client.close()


def cases_of(store: AlertsStore) -> MongoCaseStore:
    assert isinstance(store.cases, MongoCaseStore)
    return store.cases


def case(case_id: str, *, customer: str | None = "cy", thread: str | None = None, minutes: int = 0,
         status: str = "open", **fields: Any) -> Case:
    return Case.model_validate({"_id": case_id, "feedback_event_ids": [f"f-{case_id}"], "customer_id": customer,
                                "thread_id": thread, "status": status, "csm_id": "csm-1", "priority": "normal",
                                "created_at": T0 + timedelta(minutes=minutes), "updated_at": T0, **fields})


def page(delivery_id: str) -> Delivery:
    return Delivery(delivery_id=delivery_id, kind="apprise", alert_id="a", url="json://127.0.0.1:9/p",
                    title="t", body="b")


def test_claim_takes_due_pending_first_then_expired_leases_never_live_ones(store: AlertsStore) -> None:
    outbox, lease = store.outbox, timedelta(seconds=60)
    outbox.enqueue([page("later")], T0 + timedelta(minutes=5))
    outbox.enqueue([page("due")], T0)
    [first] = outbox.claim_due(T0, lease, limit=1)
    assert first["_id"] == "due" and first["attempts"] == 1 and not first["resumed"]
    # Its lease is live: nobody else can take it, and "later" is not due yet.
    assert outbox.claim_due(T0 + timedelta(seconds=30), lease, limit=1) == []
    # The worker died: once the lease expires, another claims it again (a second attempt).
    [again] = outbox.claim_due(T0 + timedelta(seconds=61), lease, limit=1)
    assert again["_id"] == "due" and again["attempts"] == 2 and again["resumed"]
    outbox.mark_sent(["due"], T0 + timedelta(seconds=62))
    assert outbox.claim_due(T0 + timedelta(minutes=4), lease, limit=1) == []
    [later] = outbox.claim_due(T0 + timedelta(minutes=5), lease, limit=1)
    assert later["_id"] == "later" and not later["resumed"]


def test_enqueue_adds_each_delivery_once_in_one_command(store: AlertsStore) -> None:
    outbox = store.outbox
    added = outbox.enqueue([page("p1"), page("p2"), page("p1")], T0, claim_for=timedelta(seconds=30))
    assert [d["_id"] for d in added] == ["p1", "p2"]
    assert all(d["status"] == "sending" and d["lease_until"] == T0 + timedelta(seconds=30) for d in added)
    # A redelivered batch: only what is new goes in (and is handed over).
    assert [d["_id"] for d in outbox.enqueue([page("p2"), page("p3")], T0)] == ["p3"]


def test_batch_claims_take_the_oldest_and_concurrent_workers_never_share_a_delivery(store: AlertsStore) -> None:
    outbox, lease = store.outbox, timedelta(seconds=60)
    for i in range(40):
        outbox.enqueue([page(f"d{i:02d}")], T0 + timedelta(seconds=i))
    first = outbox.claim_due(T0 + timedelta(seconds=2), lease, limit=10)
    assert [d["_id"] for d in first] == ["d00", "d01", "d02"]  # only the due ones, oldest first
    assert all(d["status"] == "sending" and d["attempts"] == 1 for d in first)

    # Four workers race over the rest, ten at a time, until none is left: each delivery is claimed once.
    now = T0 + timedelta(minutes=1)

    def worker(_: int) -> list[str]:
        taken: list[str] = []
        while batch := outbox.claim_due(now, lease, limit=10):
            taken += [d["_id"] for d in batch]
        return taken

    with ThreadPoolExecutor(max_workers=4) as pool:
        claimed = [delivery for taken in pool.map(worker, range(4)) for delivery in taken]
    # (A worker whose candidates were all taken by others stops early; a last one takes what is left.)
    claimed += worker(0)
    assert len(claimed) == len(set(claimed))
    assert sorted(claimed) == [f"d{i:02d}" for i in range(3, 40)]


def test_customer_cases_and_open_thread_cases_in_one_read_each(store: AlertsStore) -> None:
    cases = store.cases
    assert cases.insert([case("old", status="resolved", minutes=1), case("open-1", minutes=2),
                         case("open-2", status="acknowledged", minutes=3), case("other", customer="ana", minutes=4),
                         case("by-thread", customer=None, thread="t-9", minutes=5),
                         case("closed-thread", customer=None, thread="t-9", minutes=6, status="resolved"),
                         case("thread-1", customer=None, thread="t-1", minutes=1),
                         case("thread-2", customer=None, thread="t-1", minutes=2)]) == {
        "old", "open-1", "open-2", "other", "by-thread", "closed-thread", "thread-1", "thread-2"}
    by_customer = cases.customer_cases(["cy", "ana", "nobody"])
    assert sorted(c.id for c in by_customer["cy"]) == ["old", "open-1", "open-2"]
    assert [c.id for c in by_customer["ana"]] == ["other"] and by_customer["nobody"] == []
    assert all(c.latest is None and c.feedback_event_ids == [] for c in by_customer["cy"])  # summaries only
    assert {t: c.id for t, c in cases.open_thread_cases(["t-9", "t-1", "t-0"]).items()} == {
        "t-9": "by-thread", "t-1": "thread-2"}


def test_sla_due_finds_each_case_once_whichever_clock_ran_out(store: AlertsStore) -> None:
    for case_id, target, promise in (("both", -10, -5), ("target", -10, 50), ("promise", None, -5),
                                     ("neither", 10, 20)):
        store.cases.insert([case(case_id, internal_target=None if target is None else T0 + timedelta(minutes=target),
                                 promised_by=T0 + timedelta(minutes=promise))])
    assert sorted(c.id for c in store.cases.unresolved_due(T0)) == ["both", "promise", "target"]


def test_sla_due_skips_marked_cases_without_letting_them_crowd_out_the_rest(store: AlertsStore) -> None:
    """Cases escalated already (their target passed, their promise not yet) stay overdue on the target
    clock; with more of them than the limit, the unmarked ones behind them are still found."""
    marked = [case(f"escalated-{i}", internal_target=T0 - timedelta(minutes=30 - i), promised_by=T0 + timedelta(hours=1))
              for i in range(5)]
    store.cases.insert(marked)
    for c in marked:
        assert store.cases.mark_once(c.id, "escalated_at", T0) is not None
    store.cases.insert([case("fresh", internal_target=T0 - timedelta(minutes=1), promised_by=T0 + timedelta(hours=1))])
    found = store.cases.unresolved_due(T0, limit=2)
    assert [c.id for c in found] == ["fresh"]
    assert found[0].feedback_event_ids == ["f-fresh"] and found[0].promised_by is not None  # read whole


def test_an_item_is_in_one_case_once_even_when_a_worker_stopped_between_link_and_update(store: AlertsStore) -> None:
    cases = store.cases
    cases.link([("f-case-1", "case-1")])
    assert cases.insert([case("case-1", event_count=1)]) == {"case-1"}
    assert cases.insert([case("case-1"), case("case-2")]) == {"case-2"}  # a redelivery beside a new case
    # A worker linked f-2 to the case and stopped before updating it: the lookup finds the case, and
    # adding again completes it once.
    cases.link([("f-2", "case-1"), ("f-2", "case-2")])  # the first link wins
    found = cases.cases_of_events(["f-2", "f-unknown"])
    assert list(found) == ["f-2"] and found["f-2"].id == "case-1" and "f-2" not in found["f-2"].feedback_event_ids
    update = CaseUpdate("case-1", "f-2", Snapshot(text="again"), T0)
    assert cases.add_items([update]) == 1
    assert cases.add_items([update]) == 0
    stored = cases.get("case-1")
    assert stored is not None and stored.feedback_event_ids == ["f-case-1", "f-2"] and stored.event_count == 2
    assert stored.latest is not None and stored.latest.text == "again"


def test_a_database_from_before_case_events_is_moved_over(store: AlertsStore) -> None:
    mongo = cases_of(store)
    mongo.alerts.insert_one({"_id": "old", "kind": "case", "feedback_event_ids": ["o-1", "o-2"], "status": "open",
                             "csm_id": "c", "priority": "low", "created_at": T0, "updated_at": T0})
    mongo.alerts.create_index("feedback_event_ids", unique=True)
    mongo.ensure_indexes()
    assert "feedback_event_ids_1" not in mongo.alerts.index_information()
    assert {d["_id"]: d["alert_id"] for d in mongo.case_events.find()} == {"o-1": "old", "o-2": "old"}
    assert mongo.cases_of_events(["o-2"])["o-2"].id == "old"


def test_collections_of_an_earlier_version_are_folded_in_or_dropped(store: AlertsStore) -> None:
    directory, spikes = store.directory, store.spikes
    assert isinstance(directory, MongoDirectory) and isinstance(spikes, MongoSpikeCounter)
    db = directory.accounts.database
    db["tiers"].insert_one({"_id": "cy", "tier": "gold"})
    db["pages"].insert_one({"_id": "cy", "at": T0})
    db["public_negatives"].insert_one({"_id": "e1", "at": T0})
    store.ensure_indexes()
    assert {"tiers", "pages", "public_negatives"}.isdisjoint(db.list_collection_names())
    account = directory.account("cy")
    assert account is not None and account.tier == "gold"


def test_an_account_put_by_an_admin_keeps_what_the_system_recorded(store: AlertsStore) -> None:
    directory = store.directory
    assert directory.set_tier("cy", "silver")
    directory.erase_customer("cz", T0)
    directory.put_account("cy", {"csm_id": "csm-7", "preferred_name": "Ms. Aliyeva"})
    directory.put_account("cz", {"csm_id": "csm-7"})  # re-onboarded after an erasure: the mark stays
    accounts = directory.accounts_by_id(["cy", "cz", "nobody"])
    assert sorted(accounts) == ["cy", "cz"]
    assert (accounts["cy"].csm_id, accounts["cy"].tier, accounts["cy"].preferred_name) == (
        "csm-7", "silver", "Ms. Aliyeva")
    assert accounts["cz"].erased_at == T0
    directory.put_account("cy", {"csm_id": "csm-8", "tier": "gold"})  # the admin's tier comes first
    assert directory.account("cy").tier == "gold"  # type: ignore[union-attr]


def test_links_tell_which_items_are_new_and_the_spike_counts_per_minute(store: AlertsStore) -> None:
    assert store.cases.link([("e1", "a"), ("e2", "a")]) == {"e1", "e2"}
    assert store.cases.link([("e2", "b"), ("e3", "b")]) == {"e3"}  # e2 was linked before: a redelivery
    spikes, window = store.spikes, timedelta(minutes=10)
    spikes.add(2, T0)
    spikes.add(0, T0)
    assert spikes.count(T0, window) == 2
    spikes.add(1, T0 + timedelta(minutes=2))
    assert spikes.count(T0 + timedelta(minutes=4), window) == 3
    # Items older than the window drop out of the count.
    assert spikes.count(T0 + timedelta(minutes=11, seconds=30), window) == 1
    assert isinstance(store.outbox, MongoOutbox)


def test_erasure_blanks_a_crisis_excerpt_quoting_the_customer_and_the_pages_bodies(store: AlertsStore) -> None:
    t = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    crisis = Case(_id=f"crisis-{uuid.uuid4().hex[:6]}", kind="crisis", csm_id="manager", priority="critical",
                  created_at=t, updated_at=t,
                  latest=Snapshot(text="5 negative public items; latest on x: my card 4111 was charged twice",
                                  source="x", customer_id="cust-erase-me"))
    other = Case(_id=f"crisis-{uuid.uuid4().hex[:6]}", kind="crisis", csm_id="manager", priority="critical",
                 created_at=t, updated_at=t, latest=Snapshot(text="someone else's post", source="x",
                                                              customer_id="cust-stays"))
    store.cases.insert([crisis, other])
    store.outbox.enqueue([Delivery(f"d-{crisis.id}", "apprise", crisis.id, "json://127.0.0.1:9/m", title="t",
                                   body="my card 4111 was charged twice")], t)
    store.erase_customer("cust-erase-me", t, t)
    erased = store.cases.get(crisis.id)
    assert erased is not None and erased.latest is not None and "4111" not in erased.latest.text
    assert erased.event_count == 1 and erased.priority == "critical"  # the count stays
    kept = store.cases.get(other.id)
    assert kept is not None and kept.latest is not None and kept.latest.text == "someone else's post"
    [page] = store.outbox.deliveries_for(crisis.id)
    doc = store.outbox.outbox.find_one({"_id": page["_id"]})  # type: ignore[attr-defined]
    assert "4111" not in doc["body"]


def test_erasure_blanks_messages_to_the_customer_and_stops_those_not_sent(store: AlertsStore) -> None:
    """Thank-yous, follow-ups and replies carry the address (in the URL) and the name (in the text)."""
    outbox: MongoOutbox = store.outbox  # type: ignore[assignment]
    to = "mailto://127.0.0.1:9?from=care@example.com&to=dana@example.org"
    outbox.enqueue([Delivery(f"thanks-{n}", "apprise", f"customer-contact:{n}", to, title="Thank you, Dana",
                             body="Dear Dana, 250 points", customer_id="cust-dana") for n in range(2)]
                   + [Delivery("thanks-other", "apprise", "customer-contact:o", to.replace("dana", "omar"),
                               title="Thank you, Omar", body="Dear Omar", customer_id="cust-omar")], T0)
    outbox.mark_sent(["thanks-0"], T0)
    store.erase_customer("cust-dana", T0, T0)
    docs = {d["_id"]: d for d in outbox.outbox.find({})}
    for n, status in ((0, "sent"), (1, "dead")):
        doc = docs[f"thanks-{n}"]
        assert (doc["status"], doc["url"], doc["title"]) == (status, "erased://", "[erased]")
        assert "Dana" not in doc["body"] and "customer_id" not in doc
    assert docs["thanks-other"]["title"] == "Thank you, Omar" and docs["thanks-other"]["status"] == "pending"


def test_cases_are_found_by_the_reference_quoted_to_customers_and_an_answer_is_recorded_once(
        store: AlertsStore) -> None:
    cases = cases_of(store)
    ids = ["1a2b3c4d-0000-5000-8000-000000000001", "1a2b3c4e-0000-5000-8000-000000000002",
           "1a2b3c4c-0000-5000-8000-000000000003"]
    cases.insert([case(i).model_copy(update={"status": "resolved"}) for i in ids])
    assert [c.id for c in cases.by_references(["1a2b3c4d"])] == ids[:1]
    assert sorted(c.id for c in cases.by_references(["1a2b3c4d", "1a2b3c4c", "ffffffff"])) == sorted([ids[0], ids[2]])
    entry = {"action": "checkin_answered", "at": T0, "feedback_event_id": "f-1"}
    assert cases.act(ids[0], {"checkin_answer": "positive"}, entry, T0, ("resolved",), once_per_item="f-1")
    assert cases.act(ids[0], {"checkin_answer": "positive"}, entry, T0, ("resolved",), once_per_item="f-1") is None
    assert len(cases.get(ids[0]).history) == 1  # type: ignore[union-attr]


def test_last_interactions_move_forward_only_and_a_newer_one_clears_the_churn_mark(store: AlertsStore) -> None:
    activity = store.activity
    day = timedelta(days=1)
    activity.touch([("c-a", T0), ("c-b", T0), ("c-a", T0 - day)])  # new customers; the older one is ignored
    activity.flag([("c-a", T0)])  # a churn-risk case opened for c-a's silence
    window = (T0 - 90 * day, T0 + day)
    assert [a.customer_id for a in activity.silent(*window)] == ["c-b"]
    activity.touch([("c-a", T0 - day), ("c-b", T0 - day)])  # older (out of order): nothing changes
    assert [a.customer_id for a in activity.silent(*window)] == ["c-b"]
    assert [a.last_interaction_at for a in activity.silent(*window)] == [T0]
    activity.touch([("c-a", T0 + 2 * day), ("c-c", T0)])  # c-a interacts again: the mark goes, c-c is new
    later = (T0 - 90 * day, T0 + 3 * day)
    assert {(a.customer_id, a.last_interaction_at) for a in activity.silent(*later)} == {
        ("c-a", T0 + 2 * day), ("c-b", T0), ("c-c", T0)}
    # Within the hour: not written (the silence rule counts days); a flagged customer is, at once.
    activity.flag([("c-b", T0)])
    activity.touch([("c-c", T0 + timedelta(minutes=30)), ("c-b", T0 + timedelta(minutes=30))])
    assert {(a.customer_id, a.last_interaction_at) for a in activity.silent(*later)} == {
        ("c-a", T0 + 2 * day), ("c-b", T0 + timedelta(minutes=30)), ("c-c", T0)}


def test_a_customer_inserted_by_another_replica_between_read_and_write_still_moves_forward(
    store: AlertsStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from alerts.stores import activity as activity_module

    real_insert_new = activity_module.insert_new

    def replica_first(collection: Any, docs: Any) -> list[int]:
        # Another replica records an older interaction for c-r after this one read "not there".
        collection.insert_one({"_id": "c-r", "last_interaction_at": T0 - timedelta(days=5)})
        return real_insert_new(collection, docs)

    monkeypatch.setattr(activity_module, "insert_new", replica_first)
    store.activity.touch([("c-r", T0)])
    [found] = store.activity.silent(T0 - timedelta(days=90), T0 + timedelta(days=1))
    assert (found.customer_id, found.last_interaction_at) == ("c-r", T0)
