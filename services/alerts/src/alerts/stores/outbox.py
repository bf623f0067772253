"""The outbox: every page and webhook call, written before it is sent, sent by leased workers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

from alerts.domain import Delivery
from alerts.stores._bulk import insert_new
from feedback_shared.mongo import chunks

Doc = dict[str, Any]


class MongoOutbox:
    def __init__(self, db: Database[Doc]) -> None:
        self.outbox: Collection[Doc] = db["outbox"]

    def ensure_indexes(self) -> None:
        self.outbox.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
        self.outbox.create_index([("status", ASCENDING), ("lease_until", ASCENDING)])
        self.outbox.create_index([("customer_id", ASCENDING)], sparse=True)

    def enqueue(self, deliveries: Sequence[Delivery], now: datetime, *,
                claim_for: timedelta | None = None) -> list[Doc]:
        """Add the deliveries not already there (a redelivered item enqueues nothing twice), in one
        command; the stored deliveries this call added.

        ``claim_for``: they go in already claimed by the caller for that lease (status ``sending``, first
        attempt), to be sent by this process next without a claim query and update. If the process dies
        first, the lease expires and any worker claims them as usual.
        """
        fields: Doc = {"status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
        if claim_for is not None:
            fields.update(status="sending", attempts=1, lease_until=now + claim_for)
        unique = list({d.delivery_id: d for d in deliveries}.values())
        docs = [{"_id": d.delivery_id, **d.to_doc(), **fields} for d in unique]
        return [docs[i] for i in insert_new(self.outbox, docs)]

    def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[Doc]:
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

    def renew_leases(self, held: Sequence[tuple[str, datetime, int]], new_until: datetime) -> set[str]:
        """Extend the caller's leases (delivery id, its lease until, its attempts) to ``new_until``, in
        one command; the ids renewed. One not renewed is no longer the caller's (another worker claimed it
        once the lease ran out, counting an attempt) or is done."""
        if not held:
            return set()
        result = self.outbox.bulk_write(
            [UpdateOne({"_id": d, "status": "sending", "lease_until": until, "attempts": attempts},
                       {"$set": {"lease_until": new_until}}) for d, until, attempts in held], ordered=False)
        if result.modified_count == len(held):
            return {d for d, _, _ in held}
        # Some were not ours any more: the renewed ones now carry ``new_until`` and still our attempt
        # count (a worker that took one over counted an attempt, even if its lease ends at the same time).
        attempts_of = {d: attempts for d, _, attempts in held}
        renewed: set[str] = set()
        for chunk in chunks(list(attempts_of)):
            renewed |= {doc["_id"] for doc in self.outbox.find(
                {"_id": {"$in": chunk}, "status": "sending", "lease_until": new_until},
                {"_id": 1, "attempts": 1}) if doc.get("attempts") == attempts_of[doc["_id"]]}
        return renewed

    def release(self, delivery_id: str, lease_until: datetime, now: datetime) -> bool:
        """Give back a delivery claimed with the lease ``lease_until`` and not attempted: pending again,
        due now, its attempt not counted. False if the lease was not (or no longer) the caller's."""
        return self.outbox.update_one(
            {"_id": delivery_id, "status": "sending", "lease_until": lease_until},
            {"$set": {"status": "pending", "next_attempt_at": now}, "$inc": {"attempts": -1}},
        ).modified_count == 1

    def mark_sent(self, delivery_ids: Sequence[str], now: datetime) -> None:
        """Record these deliveries sent, in one command."""
        if delivery_ids:
            self.outbox.update_many({"_id": {"$in": list(delivery_ids)}}, {"$set": {"status": "sent", "sent_at": now}})

    def mark_failed(self, delivery_id: str, *, dead: bool, next_attempt_at: datetime, error: str) -> None:
        self.outbox.update_one(
            {"_id": delivery_id},
            {"$set": {"status": "dead" if dead else "pending", "next_attempt_at": next_attempt_at,
                      "last_error": error[:500]}},
        )

    def deliveries_for(self, alert_id: str) -> list[Doc]:
        return list(self.outbox.find({"alert_id": alert_id}, {"title": 0, "body": 0, "payload": 0}))

    def dead(self, limit: int) -> list[Doc]:
        """Deliveries given up after their retries (or refused outright), oldest first, without texts."""
        return list(self.outbox.find({"status": "dead"}, {"title": 0, "body": 0, "payload": 0})
                    .sort("next_attempt_at", ASCENDING).limit(limit))

    def requeue(self, delivery_ids: Sequence[str] | None, now: datetime) -> int:
        """Send these dead deliveries (None: every one) again from now, with their attempts reset."""
        query: Doc = {"status": "dead"}
        if delivery_ids is not None:
            query["_id"] = {"$in": list(delivery_ids)}
        return self.outbox.update_many(query, {"$set": {"status": "pending", "attempts": 0, "next_attempt_at": now,
                                                        "requeued_at": now}}).modified_count

    def erase_customer(self, customer_id: str, now: datetime) -> int:
        """Blank every message to the customer (thank-yous, follow-ups, replies: their address is in the
        URL, their name in the text), sent or not; one not sent yet is never sent (dead, with why)."""
        self.outbox.update_many({"customer_id": customer_id, "status": {"$in": ["pending", "sending"]}},
                                {"$set": {"status": "dead", "last_error": "erased at the customer's request",
                                          "dead_at": now}})
        return int(self.outbox.update_many(
            {"customer_id": customer_id},
            {"$set": {"title": "[erased]", "body": "[erased at the customer's request]", "payload": "{}",
                      "url": "erased://"}, "$unset": {"customer_id": ""}}).modified_count)

    def erase_cases(self, case_ids: Sequence[str]) -> None:
        """Blank the texts of these cases' pages and webhook calls (an erasure)."""
        self.outbox.update_many(
            {"alert_id": {"$in": list(case_ids)}},
            {"$set": {"title": "[erased]", "body": "[erased at the customer's request]", "payload": "{}"}},
        )
