"""The alerts service's own database: cases, CSMs, accounts, tiers, the spike window and the outbox."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from alerts.rules import Account

Doc = dict[str, Any]
OPEN_STATUSES = ("open", "acknowledged", "responded")


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

    def ensure_indexes(self) -> None:
        # Every scored event belongs to at most one case: the dedupe key for redelivered events.
        self.alerts.create_index("feedback_event_ids", unique=True)
        self.alerts.create_index([("customer_id", ASCENDING), ("status", ASCENDING)])
        self.alerts.create_index([("thread_id", ASCENDING), ("status", ASCENDING)], sparse=True)
        self.alerts.create_index([("status", ASCENDING), ("created_at", DESCENDING)])
        self.alerts.create_index([("status", ASCENDING), ("internal_target", ASCENDING)])
        self.alerts.create_index([("status", ASCENDING), ("promised_by", ASCENDING)])
        self.outbox.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
        self.outbox.create_index([("status", ASCENDING), ("lease_until", ASCENDING)])
        self.public_negatives.create_index([("at", ASCENDING)])

    # ---- cases -----------------------------------------------------------------------------------
    def case_with_event(self, feedback_event_id: str) -> Doc | None:
        return self.alerts.find_one({"feedback_event_ids": feedback_event_id})

    def open_case_for(self, customer_id: str | None, thread_id: str | None) -> Doc | None:
        """The customer's open case, or the thread's: the customer need not explain twice."""
        # One indexed query per key rather than an $or: SecantusDB (the embedded dev database) scans the
        # whole collection for an $or, which made every negative item cost a scan of every case.
        found = [
            self.alerts.find_one({key: value, "status": {"$in": list(OPEN_STATUSES)}, "kind": "case"},
                                 sort=[("created_at", DESCENDING)])
            for key, value in (("customer_id", customer_id), ("thread_id", thread_id)) if value
        ]
        cases = [case for case in found if case is not None]
        return max(cases, key=lambda case: case["created_at"]) if cases else None

    def count_cases_for(self, customer_id: str) -> int:
        return self.alerts.count_documents({"customer_id": customer_id, "kind": "case"})

    def insert_case(self, doc: Doc) -> bool:
        """Insert a new case; False if it exists already (a redelivery, or a crisis already raised)."""
        try:
            self.alerts.insert_one(doc)
            return True
        except DuplicateKeyError:
            return False

    def add_event_to_case(self, alert_id: str, feedback_event_id: str, latest: Doc, now: datetime) -> Doc | None:
        return self.alerts.find_one_and_update(
            {"_id": alert_id, "feedback_event_ids": {"$ne": feedback_event_id}},
            {"$push": {"feedback_event_ids": feedback_event_id}, "$inc": {"event_count": 1},
             "$set": {"latest": latest, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )

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
        return self.alerts.find_one_and_update(
            {"_id": alert_id, "status": {"$in": list(from_statuses)}},
            {"$set": {"status": to, f"{to}_at": now, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
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
        return self.alerts.find_one_and_update(
            {"_id": alert_id, field: None}, {"$set": {field: now, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )

    # ---- pages and the spike window ----------------------------------------------------------------
    def last_paged_at(self, customer_id: str) -> datetime | None:
        doc = self.pages.find_one({"_id": customer_id})
        return doc["at"] if doc else None

    def record_page(self, customer_id: str, now: datetime) -> None:
        self.pages.update_one({"_id": customer_id}, {"$max": {"at": now}}, upsert=True)

    def count_public_negatives(self, feedback_event_id: str, at: datetime, window: timedelta) -> int:
        """Record one negative public item (once per event) and count those in the window up to ``at``.

        Counted per minute, so the window is exact to the minute and the count is one read of a few
        small documents. Counting the items themselves read every item in the window for every new one:
        26 ms per item with 1,000 in the window on the embedded database, the largest share of
        ``feedback_to_alert`` under load. Only the call that records an item adds it to its minute, so a
        redelivery never counts twice (a crash between the two writes undercounts that one item).
        """
        minute = int(at.timestamp() // 60)
        recorded = self.public_negatives.update_one(
            {"_id": feedback_event_id}, {"$setOnInsert": {"at": at, "minute": minute}}, upsert=True)
        if recorded.upserted_id is not None:
            self.spike_minutes.update_one({"_id": minute}, {"$inc": {"count": 1}}, upsert=True)
        first = int((at - window).timestamp() // 60) + 1
        minutes = list(range(first, minute + 1))
        return sum(int(d["count"]) for d in self.spike_minutes.find({"_id": {"$in": minutes}}))

    # ---- routing ---------------------------------------------------------------------------------
    def put_csm(self, csm_id: str, doc: Doc) -> None:
        self.csms.replace_one({"_id": csm_id}, {"_id": csm_id, **doc}, upsert=True)

    def get_csm(self, csm_id: str) -> Doc | None:
        return self.csms.find_one({"_id": csm_id})

    def put_account(self, customer_id: str, doc: Doc) -> None:
        self.accounts.replace_one({"_id": customer_id}, {"_id": customer_id, **doc}, upsert=True)

    def set_tier(self, customer_id: str, tier: str) -> None:
        """The loyalty tier, from ``loyalty.points.v1``: alerts' own view of it."""
        self.tiers.update_one({"_id": customer_id}, {"$set": {"tier": tier}}, upsert=True)

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
        )

    # ---- outbox ----------------------------------------------------------------------------------
    def enqueue(self, delivery_id: str, doc: Doc, now: datetime) -> None:
        """Add a delivery unless it is already there (redelivered events enqueue nothing twice)."""
        self.outbox.update_one(
            {"_id": delivery_id},
            {"$setOnInsert": {**doc, "status": "pending", "attempts": 0, "next_attempt_at": now,
                              "created_at": now}},
            upsert=True,
        )

    def claim_due(self, now: datetime, lease: timedelta) -> Doc | None:
        """Atomically take one due delivery: pending and due, or sending with an expired lease."""
        # Two indexed queries, not one $or (a full scan of the outbox, sent deliveries included, in the
        # embedded dev database: it put seconds on feedback_to_alert once the outbox held thousands).
        claim = {"$set": {"status": "sending", "lease_until": now + lease}, "$inc": {"attempts": 1}}
        return self.outbox.find_one_and_update(
            {"status": "pending", "next_attempt_at": {"$lte": now}}, claim,
            sort=[("next_attempt_at", ASCENDING)], return_document=ReturnDocument.AFTER,
        ) or self.outbox.find_one_and_update(
            {"status": "sending", "lease_until": {"$lte": now}}, claim,
            sort=[("lease_until", ASCENDING)], return_document=ReturnDocument.AFTER,
        )

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
    def erase_customer(self, customer_id: str, now: datetime) -> dict[str, int]:
        """Delete the account and every text the customer wrote; keep the cases' counts and clocks.

        What stays: priority, status, needs, event count and timestamps (what dashboards count).
        """
        account = self.accounts.delete_one({"_id": customer_id}).deleted_count
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
        return {"accounts": int(account), "cases": len(case_ids)}
