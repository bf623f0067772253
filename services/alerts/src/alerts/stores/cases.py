"""Cases and the links of scored items to them (``alerts``, ``case_events``).

No ``find_one_and_update`` here: SecantusDB (the embedded dev database) answers it with a scan of the
whole collection, 9 ms per call at 500 documents and 36 ms at 5,000. A conditional ``update_one`` on
``_id`` (about 1 ms at any size) is just as atomic; the document is then read back by ``_id``.
Reads and writes for the stream are per batch: one command for every case a batch touches.
"""

from __future__ import annotations

from collections.abc import Collection as Many
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

from alerts.decide import CaseUpdate
from alerts.domain import OPEN_STATUSES, STATUSES, Case
from alerts.stores._bulk import insert_new
from feedback_shared.mongo import chunks

Doc = dict[str, Any]
#: What the stream needs of a customer's earlier cases: not their texts nor their event lists.
SUMMARY = {"latest": 0, "first": 0, "feedback_event_ids": 0}


class MongoCaseStore:
    def __init__(self, db: Database[Doc]) -> None:
        self.alerts: Collection[Doc] = db["alerts"]
        #: One document per scored item in a case, ``_id`` = the item's event id: every item belongs to
        #: at most one case, the dedupe key for redelivered items. (It was a unique index on the case's
        #: ``feedback_event_ids``; SecantusDB rewrites every index entry of a document on each update, so
        #: a case with 40 items cost 7 ms per update instead of 2, and cases only grow.)
        self.case_events: Collection[Doc] = db["case_events"]

    def ensure_indexes(self) -> None:
        self._move_event_index_to_case_events()
        self.alerts.create_index([("customer_id", ASCENDING), ("status", ASCENDING)])
        self.alerts.create_index([("thread_id", ASCENDING), ("status", ASCENDING)], sparse=True)
        self.alerts.create_index([("status", ASCENDING), ("created_at", DESCENDING)])
        self.alerts.create_index([("status", ASCENDING), ("internal_target", ASCENDING)])
        self.alerts.create_index([("status", ASCENDING), ("promised_by", ASCENDING)])

    def _move_event_index_to_case_events(self) -> None:
        """A database made by an earlier version: copy its cases' items into ``case_events``, then drop
        the unique index they had on the cases."""
        if "feedback_event_ids_1" not in self.alerts.index_information():
            return
        for case in self.alerts.find({}, {"feedback_event_ids": 1}):
            self.link([(feedback_event_id, case["_id"]) for feedback_event_id in case.get("feedback_event_ids", [])])
        self.alerts.drop_index("feedback_event_ids_1")

    # ---- the stream: bulk reads ------------------------------------------------------------------
    def cases_of_events(self, feedback_event_ids: Sequence[str]) -> dict[str, Case]:
        """The cases these items are already in (or were being added to when a worker stopped), by item."""
        if not feedback_event_ids:
            return {}
        links = {d["_id"]: d["alert_id"] for d in self.case_events.find({"_id": {"$in": list(feedback_event_ids)}})}
        if not links:
            return {}
        cases = {d["_id"]: Case.from_doc(d) for d in self.alerts.find({"_id": {"$in": sorted(set(links.values()))}})}
        return {event_id: cases[alert_id] for event_id, alert_id in links.items() if alert_id in cases}

    def customer_cases(self, customer_ids: Iterable[str]) -> dict[str, list[Case]]:
        """Every case of these customers, without texts. Both fields of the (customer_id, status) index:
        40 % cheaper on SecantusDB than customer_id alone."""
        wanted = sorted(set(customer_ids))
        out: dict[str, list[Case]] = {c: [] for c in wanted}
        if wanted:
            for doc in self.alerts.find({"customer_id": {"$in": wanted}, "status": {"$in": list(STATUSES)}}, SUMMARY):
                out[doc["customer_id"]].append(Case.from_doc(doc))
        return out

    def open_thread_cases(self, thread_ids: Iterable[str]) -> dict[str, Case]:
        """The newest open case of each thread."""
        wanted = sorted(set(thread_ids))
        out: dict[str, Case] = {}
        if wanted:
            query = {"thread_id": {"$in": wanted}, "status": {"$in": list(OPEN_STATUSES)}, "kind": "case"}
            for doc in self.alerts.find(query, SUMMARY):
                case = Case.from_doc(doc)
                if case.thread_id and (case.thread_id not in out or case.created_at > out[case.thread_id].created_at):
                    out[case.thread_id] = case
        return out

    # ---- the stream: bulk writes -----------------------------------------------------------------
    def link(self, links: Sequence[tuple[str, str]]) -> set[str]:
        """Claim each item for its case; an item linked before keeps its first case. Written before the
        cases, so a worker stopping in between leaves links to case ids derived from the same items,
        which the redelivery completes. The items this call linked (not linked before)."""
        docs = [{"_id": event_id, "alert_id": alert_id} for event_id, alert_id in links]
        return {docs[i]["_id"] for i in insert_new(self.case_events, docs)}

    def insert(self, cases: Sequence[Case]) -> set[str]:
        """Insert new cases; the ids of those this call inserted (not a redelivery's, nor a crisis another
        worker raised first)."""
        inserted = insert_new(self.alerts, [c.to_doc() for c in cases])
        return {cases[i].id for i in inserted}

    def add_items(self, updates: Sequence[CaseUpdate]) -> int:
        """Add each item to its open case, in order; how many were not in it already. Guarded per item,
        so applying them again (a redelivery after a stop) changes nothing."""
        if not updates:
            return 0
        result = self.alerts.bulk_write([UpdateOne(
            {"_id": u.alert_id, "feedback_event_ids": {"$ne": u.feedback_event_id}},
            {"$push": {"feedback_event_ids": u.feedback_event_id}, "$inc": {"event_count": 1},
             "$set": {"latest": u.latest.model_dump(), "updated_at": u.at}},
        ) for u in updates], ordered=True)
        return int(result.modified_count)

    # ---- the API and the SLA clock ---------------------------------------------------------------
    def get(self, alert_id: str) -> Case | None:
        doc = self.alerts.find_one({"_id": alert_id})
        return Case.from_doc(doc) if doc else None

    def find(self, *, status: str | None, csm: str | None, need: str | None, limit: int,
             within: Many[str] | None = None) -> list[Case]:
        query: Doc = {}
        if status:
            query["status"] = status
        if csm:
            query["csm_id"] = csm
        if need:
            query["needs"] = need
        if within is not None:
            # A CSM's view: its own cases and the fallback queue's (``csm`` narrows it further).
            query.setdefault("csm_id", {"$in": sorted(within)})
            if csm and csm not in within:
                return []
        return [Case.from_doc(d) for d in self.alerts.find(query).sort("created_at", DESCENDING).limit(limit)]

    def _update_then_read(self, query: Doc, update: Doc) -> Case | None:
        """Apply ``update`` if ``query`` (which names an ``_id``) matches; the case afterwards, or None
        when nothing matched. The read may already show a later change by another writer, never an
        earlier state."""
        if self.alerts.update_one(query, update).modified_count == 0:
            return None
        return self.get(query["_id"])

    def transition(self, alert_id: str, from_statuses: tuple[str, ...], to: str, now: datetime) -> Case | None:
        return self._update_then_read({"_id": alert_id, "status": {"$in": list(from_statuses)}},
                                      {"$set": {"status": to, f"{to}_at": now, "updated_at": now}})

    def add_reply(self, alert_id: str, reply: dict[str, Any], now: datetime) -> Case | None:
        """Record a reply once (by its id); the first moves an open or acknowledged case to responded.
        The case afterwards, or None when there is no such case."""
        self.alerts.update_one({"_id": alert_id, "replies.reply_id": {"$ne": reply["reply_id"]}},
                               {"$push": {"replies": reply}, "$set": {"updated_at": now}})
        self.alerts.update_one({"_id": alert_id, "status": {"$in": ["open", "acknowledged"]}},
                               {"$set": {"status": "responded", "responded_at": now, "updated_at": now}})
        return self.get(alert_id)

    def act(self, alert_id: str, fields: dict[str, Any], entry: dict[str, Any], now: datetime,
            from_statuses: tuple[str, ...] | None = None, *, once_per_item: str | None = None) -> Case | None:
        """Set ``fields`` and record ``entry`` in the case's history, if its status is one of
        ``from_statuses`` (any, when None) and, with ``once_per_item``, no history entry is that item's
        already (a redelivered item does it once). The case afterwards, or None when nothing matched."""
        query: Doc = {"_id": alert_id}
        if from_statuses is not None:
            query["status"] = {"$in": list(from_statuses)}
        if once_per_item is not None:
            query["history.feedback_event_id"] = {"$ne": once_per_item}
        return self._update_then_read(query, {"$set": {**fields, "updated_at": now}, "$push": {"history": entry}})

    def by_references(self, references: Iterable[str]) -> list[Case]:
        """Cases whose id starts with one of ``references`` (the 8 characters quoted to customers): a
        range on ``_id`` each, so the primary index answers it."""
        ranges = [{"_id": {"$gte": ref, "$lt": ref + "\uffff"}} for ref in sorted(set(references))]
        if not ranges:
            return []
        return [Case.from_doc(d) for d in self.alerts.find({"$or": ranges, "kind": "case"})]

    def customer_history(self, customer_id: str, limit: int = 20) -> list[Case]:
        """The customer's cases, newest first, with their replies (the case page's earlier cases)."""
        return [Case.from_doc(d) for d in self.alerts.find({"customer_id": customer_id}, {"first": 0, "history": 0})
                .sort("created_at", DESCENDING).limit(limit)]

    def waiting_cases(self, customer_ids: Iterable[str]) -> list[Case]:
        wanted = sorted(set(customer_ids))
        if not wanted:
            return []
        return [Case.from_doc(d) for d in self.alerts.find({"customer_id": {"$in": wanted},
                                                             "status": "waiting_on_customer"})]

    def resume(self, resumed: Sequence[tuple[str, dict[str, Any]]], now: datetime) -> int:
        """Restart the clock of cases whose customer wrote again: each (id, fields to set), applied only
        while the case is still waiting, so a redelivery does not shift the deadlines twice."""
        if not resumed:
            return 0
        result = self.alerts.bulk_write([UpdateOne(
            {"_id": alert_id, "status": "waiting_on_customer"},
            {"$set": {**fields, "updated_at": now}, "$unset": {"waiting_since": "", "status_before_waiting": ""},
             "$push": {"history": {"action": "customer_wrote", "by": None, "at": now}}},
        ) for alert_id, fields in resumed], ordered=False)
        return int(result.modified_count)

    def unresolved_due(self, now: datetime, limit: int = 200) -> list[Case]:
        """Open cases whose internal target or promise has passed and is not marked yet (escalated,
        breached), up to ``limit``, each once.

        One indexed query per status and clock, naming only those two fields: the embedded dev database
        scans every case for an $or, a status $in, or as soon as a query names a third field (the mark:
        190 ms at 6,000 open cases, four times per SLA tick, so an incident's cases slowed every other
        command more the more it had opened), and answers an equality and a range from the index (1 ms).
        The marks are read from a projection and checked here; only the cases still due are read whole.
        The projection holds every overdue case of the status (marked ones too), so a backlog of marked
        overdue cases costs a read of their ids and marks per tick, never a scan of all cases."""
        due: dict[str, None] = {}  # ids in the order found, each once
        for status in OPEN_STATUSES:
            for clock, mark in (("internal_target", "escalated_at"), ("promised_by", "breached_at")):
                for doc in self.alerts.find({"status": status, clock: {"$lte": now}}, {mark: 1}):
                    if doc.get(mark) is None:
                        due.setdefault(doc["_id"])
        ids = list(due)[:limit]
        docs = {d["_id"]: d for chunk in chunks(ids) for d in self.alerts.find({"_id": {"$in": chunk}})}
        return [Case.from_doc(docs[i]) for i in ids if i in docs]

    def mark_once(self, alert_id: str, field: str, now: datetime) -> Case | None:
        """Set ``field`` to ``now`` if it was never set; the case if this call set it."""
        return self._update_then_read({"_id": alert_id, field: None}, {"$set": {field: now, "updated_at": now}})

    def erase_customer(self, customer_id: str, now: datetime) -> list[str]:
        """Remove the customer and their texts from their cases; keep counts and clocks. The case ids."""
        case_ids = [d["_id"] for d in self.alerts.find({"customer_id": customer_id}, {"_id": 1})]
        self.alerts.update_many(
            {"_id": {"$in": case_ids}},
            {"$set": {"customer_id": None, "erased_at": now},
             "$unset": {"latest": "", "first": "", "trace_id": "", "thread_id": "", "replies": ""}},
        )
        # Crisis cases quote one customer's public post in their excerpt: blank it, keep the count.
        crisis_ids = [d["_id"] for d in self.alerts.find({"kind": "crisis", "latest.customer_id": customer_id},
                                                          {"_id": 1})]
        if crisis_ids:
            self.alerts.update_many({"_id": {"$in": crisis_ids}},
                                    {"$set": {"latest.text": "[excerpt erased at a customer's request]",
                                              "latest.customer_id": None, "updated_at": now}})
        return case_ids + crisis_ids
