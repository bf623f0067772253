"""The alerts service's own database: cases, CSMs, accounts, tiers, the spike window and the outbox.

No ``find_one_and_update`` here: SecantusDB (the embedded dev database) answers it with a scan of the
whole collection, 9 ms per call at 500 documents and 36 ms at 5,000, which made ``feedback_to_alert``
grow with the number of cases and deliveries. A conditional ``update_one`` on ``_id`` (about 1 ms at any
size) is just as atomic; the document is then read back by ``_id`` where the caller needs it.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, get_args

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from alerts.rules import Account
from feedback_shared.events import AlertStatus, erased_with

Doc = dict[str, Any]
OPEN_STATUSES = ("open", "acknowledged", "responded")
STATUSES: tuple[str, ...] = get_args(AlertStatus)
#: Seconds a CSM's record is reused before it is read again (a change through this process's API is
#: seen at once; one made through another replica, within this time).
CSM_CACHE_S = 5.0


class AlertsRepository:
    def __init__(self, db: Database[Doc]) -> None:
        self.alerts: Collection[Doc] = db["alerts"]
        self.csms: Collection[Doc] = db["csms"]
        self.accounts: Collection[Doc] = db["accounts"]
        self.tiers: Collection[Doc] = db["tiers"]
        self.pages: Collection[Doc] = db["pages"]
        self.public_negatives: Collection[Doc] = db["public_negatives"]
        self.spike_minutes: Collection[Doc] = db["spike_minutes"]
        self.outbox: Collection[Doc] = db["outbox"]
        #: One document per scored event in a case, ``_id`` = the event id: every event belongs to at most
        #: one case, the dedupe key for redelivered events. (It was a unique index on the case's
        #: ``feedback_event_ids``; SecantusDB rewrites every index entry of a document on each update, so
        #: a case with 40 events cost 7 ms per update instead of 2, and cases only grow.)
        self.case_events: Collection[Doc] = db["case_events"]
        self._csm_cache: dict[str, tuple[float, Doc | None]] = {}

    def ensure_indexes(self) -> None:
        self._move_event_index_to_case_events()
        self.alerts.create_index([("customer_id", ASCENDING), ("status", ASCENDING)])
        self.alerts.create_index([("thread_id", ASCENDING), ("status", ASCENDING)], sparse=True)
        self.alerts.create_index([("status", ASCENDING), ("created_at", DESCENDING)])
        self.alerts.create_index([("status", ASCENDING), ("internal_target", ASCENDING)])
        self.alerts.create_index([("status", ASCENDING), ("promised_by", ASCENDING)])
        self.outbox.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
        self.outbox.create_index([("status", ASCENDING), ("lease_until", ASCENDING)])
        self.public_negatives.create_index([("at", ASCENDING)])

    def _move_event_index_to_case_events(self) -> None:
        """A database made by an earlier version: copy its cases' events into ``case_events``, then drop
        the unique index they had on the cases."""
        if "feedback_event_ids_1" not in self.alerts.index_information():
            return
        for case in self.alerts.find({}, {"feedback_event_ids": 1}):
            for feedback_event_id in case.get("feedback_event_ids", []):
                self.case_events.update_one({"_id": feedback_event_id}, {"$setOnInsert": {"alert_id": case["_id"]}},
                                            upsert=True)
        self.alerts.drop_index("feedback_event_ids_1")

    # ---- cases -----------------------------------------------------------------------------------
    def case_with_event(self, feedback_event_id: str) -> Doc | None:
        """The case the event is in (or was being added to when a worker stopped: see ``add_event_to_case``)."""
        link = self.case_events.find_one({"_id": feedback_event_id})
        return self.alerts.find_one({"_id": link["alert_id"]}) if link else None

    def open_case_for(self, customer_id: str | None, thread_id: str | None) -> Doc | None:
        """The customer's open case, or the thread's: the customer need not explain twice."""
        return self.case_history(customer_id, thread_id)[0]

    def case_history(self, customer_id: str | None, thread_id: str | None) -> tuple[Doc | None, int]:
        """The newest open case of the customer or the thread, and how many cases the customer has had.

        One indexed query per key rather than an $or (SecantusDB scans the whole collection for an $or);
        the customer's cases are read once for both answers, without their texts and event lists.
        """
        summary = {"latest": 0, "first": 0, "feedback_event_ids": 0}
        # Both fields of the (customer_id, status) index, every status: 40 % cheaper on SecantusDB than
        # customer_id alone with a filter on kind.
        customer_cases = [case for case in self.alerts.find(
            {"customer_id": customer_id, "status": {"$in": list(STATUSES)}}, summary) if case.get("kind") == "case"] \
            if customer_id else []
        candidates = [case for case in customer_cases if case.get("status") in OPEN_STATUSES]
        if thread_id:
            thread_case = self.alerts.find_one(
                {"thread_id": thread_id, "status": {"$in": list(OPEN_STATUSES)}, "kind": "case"}, summary,
                sort=[("created_at", DESCENDING)])
            candidates += [thread_case] if thread_case is not None else []
        newest = max(candidates, key=lambda case: case["created_at"]) if candidates else None
        return newest, len(customer_cases)

    def insert_case(self, doc: Doc) -> bool:
        """Insert a new case; False if it exists already (a redelivery, or a crisis already raised).

        Its events are linked first: a worker stopping in between leaves links to a case id derived from
        the same event, which the redelivery then inserts."""
        for feedback_event_id in doc.get("feedback_event_ids", []):
            self._link(feedback_event_id, doc["_id"])
        try:
            self.alerts.insert_one(doc)
            return True
        except DuplicateKeyError:
            return False

    def _link(self, feedback_event_id: str, alert_id: str) -> None:
        """Claim the event for the case; an event linked before keeps its first case."""
        try:
            self.case_events.insert_one({"_id": feedback_event_id, "alert_id": alert_id})
        except DuplicateKeyError:
            pass

    def _update_then_read(self, collection: Collection[Doc], query: Doc, update: Doc) -> Doc | None:
        """Apply ``update`` if ``query`` (which names an ``_id``) matches; the document afterwards, or
        None when nothing matched. The read may already show a later change by another writer, never
        an earlier state."""
        if collection.update_one(query, update).modified_count == 0:
            return None
        return collection.find_one({"_id": query["_id"]})

    def add_event_to_case(self, alert_id: str, feedback_event_id: str, latest: Doc, now: datetime) -> bool:
        """Add the event to the case; False if it was in it already.

        The link comes first and claims the event for this case; the update is guarded, so doing both
        again (a redelivery after a stop in between) completes the case and changes nothing else."""
        self._link(feedback_event_id, alert_id)
        return self.alerts.update_one(
            {"_id": alert_id, "feedback_event_ids": {"$ne": feedback_event_id}},
            {"$push": {"feedback_event_ids": feedback_event_id}, "$inc": {"event_count": 1},
             "$set": {"latest": latest, "updated_at": now}},
        ).modified_count == 1

    def get(self, alert_id: str) -> Doc | None:
        return self.alerts.find_one({"_id": alert_id})

    def find_cases(self, *, status: str | None, csm: str | None, need: str | None, limit: int) -> list[Doc]:
        query: Doc = {}
        if status:
            query["status"] = status
        if csm:
            query["csm_id"] = csm
        if need:
            query["needs"] = need
        return list(self.alerts.find(query).sort("created_at", DESCENDING).limit(limit))

    def transition(self, alert_id: str, from_statuses: tuple[str, ...], to: str, now: datetime) -> Doc | None:
        return self._update_then_read(
            self.alerts, {"_id": alert_id, "status": {"$in": list(from_statuses)}},
            {"$set": {"status": to, f"{to}_at": now, "updated_at": now}},
        )

    # ---- SLA -------------------------------------------------------------------------------------
    def unresolved_due(self, now: datetime, limit: int = 200) -> list[Doc]:
        # Two indexed queries rather than an $or, which the embedded dev database answers with a scan.
        unresolved = {"status": {"$in": list(OPEN_STATUSES)}}
        due = {d["_id"]: d for d in self.alerts.find(
            {**unresolved, "internal_target": {"$lte": now}, "escalated_at": None}).limit(limit)}
        for doc in self.alerts.find({**unresolved, "promised_by": {"$lte": now}, "breached_at": None}).limit(limit):
            due.setdefault(doc["_id"], doc)
        return list(due.values())[:limit]

    def mark_once(self, alert_id: str, field: str, now: datetime) -> Doc | None:
        """Set ``field`` to ``now`` if it was never set; the case if this call set it."""
        return self._update_then_read(self.alerts, {"_id": alert_id, field: None},
                                      {"$set": {field: now, "updated_at": now}})

    # ---- pages and the spike window ----------------------------------------------------------------
    def last_paged_at(self, customer_id: str) -> datetime | None:
        doc = self.pages.find_one({"_id": customer_id})
        return doc["at"] if doc else None

    def record_page(self, customer_id: str, now: datetime) -> None:
        self.pages.update_one({"_id": customer_id}, {"$max": {"at": now}}, upsert=True)

    def record_public_negative(self, feedback_event_id: str, at: datetime) -> int:
        """Count one negative public item in its minute, once per event; the minute."""
        minute = int(at.timestamp() // 60)
        # An insert, not an upsert: 0.58 against 0.67 ms per item on the embedded database under a mixed
        # load (its `top` command); a redelivery, which fails the insert, is rare.
        try:
            self.public_negatives.insert_one({"_id": feedback_event_id, "at": at, "minute": minute})
        except DuplicateKeyError:
            return minute
        self.spike_minutes.update_one({"_id": minute}, {"$inc": {"count": 1}}, upsert=True)
        return minute

    def count_public_negatives(self, feedback_event_id: str, at: datetime, window: timedelta) -> int:
        """Record one negative public item (once per event) and count those in the window up to ``at``.

        Counted per minute, so the window is exact to the minute and the count is one read of a few
        small documents. Counting the items themselves read every item in the window for every new one:
        26 ms per item with 1,000 in the window on the embedded database, the largest share of
        ``feedback_to_alert`` under load. Only the call that records an item adds it to its minute, so a
        redelivery never counts twice (a crash between the two writes undercounts that one item).
        """
        minute = self.record_public_negative(feedback_event_id, at)
        first = int((at - window).timestamp() // 60) + 1
        minutes = list(range(first, minute + 1))
        return sum(int(d["count"]) for d in self.spike_minutes.find({"_id": {"$in": minutes}}))

    # ---- routing ---------------------------------------------------------------------------------
    def put_csm(self, csm_id: str, doc: Doc) -> None:
        self.csms.replace_one({"_id": csm_id}, {"_id": csm_id, **doc}, upsert=True)
        self._csm_cache.pop(csm_id, None)

    def get_csm(self, csm_id: str) -> Doc | None:
        """The CSM's record; every page reads one, and a few CSMs take most pages."""
        cached = self._csm_cache.get(csm_id)
        if cached is not None and time.monotonic() - cached[0] < CSM_CACHE_S:
            return cached[1]
        doc = self.csms.find_one({"_id": csm_id})
        self._csm_cache[csm_id] = (time.monotonic(), doc)
        return doc

    def put_account(self, customer_id: str, doc: Doc) -> None:
        """Create or replace an account; an erasure mark on it stays (see ``erase_customer``)."""
        erased_at = self._erased_at(customer_id)
        kept = {"erased_at": erased_at} if erased_at else {}
        self.accounts.replace_one({"_id": customer_id}, {"_id": customer_id, **doc, **kept}, upsert=True)

    def _erased_at(self, customer_id: str) -> datetime | None:
        mark = self.accounts.find_one({"_id": customer_id}, {"erased_at": 1})
        return mark.get("erased_at") if mark else None

    def set_tier(self, customer_id: str, tier: str, caused_at: datetime | None = None) -> bool:
        """The loyalty tier, from ``loyalty.points.v1``: alerts' own view of it. Not kept (False) when
        the item that caused it (taken in at ``caused_at``) came before the customer's erasure: loyalty
        may announce it after alerts has erased the customer."""
        if caused_at is not None and erased_with(caused_at, self._erased_at(customer_id)):
            return False
        self.tiers.update_one({"_id": customer_id}, {"$set": {"tier": tier}}, upsert=True)
        return True

    def get_account(self, customer_id: str | None) -> Account | None:
        if not customer_id:
            return None
        doc = self.accounts.find_one({"_id": customer_id})
        tier_doc = self.tiers.find_one({"_id": customer_id})
        if doc is None and tier_doc is None:
            return None
        doc = doc or {}
        return Account(
            customer_id=customer_id, csm_id=doc.get("csm_id"),
            tier=doc.get("tier") or (tier_doc or {}).get("tier"),
            preferred_name=doc.get("preferred_name"), preferred_channel=doc.get("preferred_channel"),
            language=doc.get("language"),
            erased_at=doc.get("erased_at"),
        )

    # ---- outbox ----------------------------------------------------------------------------------
    def enqueue(self, delivery_id: str, doc: Doc, now: datetime, *, claim_for: timedelta | None = None) -> Doc | None:
        """Add a delivery unless it is already there (redelivered events enqueue nothing twice); the
        stored delivery if this call added it.

        ``claim_for``: the delivery goes in already claimed by the caller for that lease (status
        ``sending``, first attempt), to be sent by this process next without a claim query and update.
        If the process dies first, the lease expires and any worker claims it as usual.
        """
        fields = {**doc, "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
        if claim_for is not None:
            fields.update(status="sending", attempts=1, lease_until=now + claim_for)
        added = self.outbox.update_one({"_id": delivery_id}, {"$setOnInsert": fields}, upsert=True)
        return {"_id": delivery_id, **fields} if added.upserted_id is not None else None

    def claim_due(self, now: datetime, lease: timedelta) -> Doc | None:
        """Take one due delivery: pending and due, or sending with an expired lease."""
        claimed = self.claim_due_many(now, lease, limit=1)
        return claimed[0] if claimed else None

    def claim_due_many(self, now: datetime, lease: timedelta, limit: int) -> list[Doc]:
        """Take up to ``limit`` due deliveries, oldest first: pending and due, then sending with an
        expired lease. Each is claimed by a conditional update, so of two workers reading the same
        candidates only one gets each delivery. One taken over from an expired lease comes back with
        ``resumed=True``: the worker that held it may have sent it before it stopped."""
        # Two indexed queries, not one $or (a full scan of the outbox, sent deliveries included, in the
        # embedded dev database: it put seconds on feedback_to_alert once the outbox held thousands).
        until = now + lease
        claimed: list[Doc] = []
        for due, order in (({"status": "pending", "next_attempt_at": {"$lte": now}}, "next_attempt_at"),
                           ({"status": "sending", "lease_until": {"$lte": now}}, "lease_until")):
            if len(claimed) >= limit:
                break
            for doc in self.outbox.find(due).sort(order, ASCENDING).limit(limit - len(claimed)):
                taken = self.outbox.update_one(
                    {"_id": doc["_id"], **due},
                    {"$set": {"status": "sending", "lease_until": until}, "$inc": {"attempts": 1}})
                if taken.modified_count:
                    claimed.append({**doc, "status": "sending", "lease_until": until,
                                    "attempts": int(doc.get("attempts", 0)) + 1, "resumed": order == "lease_until"})
        return claimed

    def renew_lease(self, delivery_id: str, lease_until: datetime, new_until: datetime) -> bool:
        """Extend the caller's lease ``lease_until`` on a delivery it is still sending to ``new_until``.
        False if the lease is no longer the caller's (another worker claimed the delivery once it ran
        out) or the delivery is done."""
        return self.outbox.update_one(
            {"_id": delivery_id, "status": "sending", "lease_until": lease_until},
            {"$set": {"lease_until": new_until}},
        ).modified_count == 1

    def release(self, delivery_id: str, lease_until: datetime, now: datetime) -> bool:
        """Give back a delivery claimed with the lease ``lease_until`` and not attempted: pending again,
        due now, its attempt not counted. False if the lease was not (or no longer) the caller's."""
        return self.outbox.update_one(
            {"_id": delivery_id, "status": "sending", "lease_until": lease_until},
            {"$set": {"status": "pending", "next_attempt_at": now}, "$inc": {"attempts": -1}},
        ).modified_count == 1

    def mark_sent(self, delivery_id: str, now: datetime) -> None:
        self.outbox.update_one({"_id": delivery_id}, {"$set": {"status": "sent", "sent_at": now}})

    def mark_failed(self, delivery_id: str, *, dead: bool, next_attempt_at: datetime, error: str) -> None:
        self.outbox.update_one(
            {"_id": delivery_id},
            {"$set": {"status": "dead" if dead else "pending", "next_attempt_at": next_attempt_at,
                      "last_error": error[:500]}},
        )

    def deliveries_for(self, alert_id: str) -> list[Doc]:
        return list(self.outbox.find({"alert_id": alert_id}, {"title": 0, "body": 0, "payload": 0}))

    # ---- erasure ---------------------------------------------------------------------------------
    def erase_customer(self, customer_id: str, now: datetime, requested_at: datetime) -> dict[str, int]:
        """Delete the account and every text the customer wrote; keep the cases' counts and clocks.

        What stays: priority, status, needs, event count and timestamps (what dashboards count). The
        account is replaced by a mark holding only ``erased_at`` (``requested_at``: when ingest took the
        request), so items from before it still in flight on ``feedback.scored.v1`` are dropped when
        they arrive (``AlertHandler``) instead of opening a case with the text again.
        """
        before = self.accounts.find_one({"_id": customer_id}, {"erased_at": 0})
        account = int(before is not None and len(before) > 1)
        self.accounts.replace_one({"_id": customer_id}, {"_id": customer_id, "erased_at": requested_at}, upsert=True)
        self.tiers.delete_one({"_id": customer_id})
        self.pages.delete_one({"_id": customer_id})
        case_ids = [d["_id"] for d in self.alerts.find({"customer_id": customer_id}, {"_id": 1})]
        self.alerts.update_many(
            {"_id": {"$in": case_ids}},
            {"$set": {"customer_id": None, "erased_at": now},
             "$unset": {"latest": "", "first": "", "trace_id": "", "thread_id": ""}},
        )
        self.outbox.update_many(
            {"alert_id": {"$in": case_ids}},
            {"$set": {"title": "[erased]", "body": "[erased at the customer's request]", "payload": "{}"}},
        )
        return {"accounts": account, "cases": len(case_ids)}
