"""When each customer last interacted (a purchase, a return, a feedback item), for the silent-customer
sweep (``alerts.silence``). One document per customer, moved forward only (``$max``), so redelivered and
out-of-order events change nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

from alerts.silence import Activity

Doc = dict[str, Any]


class MongoActivity:
    def __init__(self, db: Database[Doc]) -> None:
        self.activity: Collection[Doc] = db["customer_activity"]

    def ensure_indexes(self) -> None:
        self.activity.create_index([("flagged_for", ASCENDING), ("last_interaction_at", ASCENDING)])

    def touch(self, interactions: Sequence[tuple[str, datetime]]) -> None:
        """Move each customer's last interaction forward, in one command. A newer interaction clears the
        churn-risk mark: after another silence, another case may open (for that interaction)."""
        latest: dict[str, datetime] = {}
        for customer_id, at in interactions:
            latest[customer_id] = max(latest.get(customer_id, at), at)
        if not latest:
            return
        # Per customer: move an older date forward (clearing the mark), or create the document.
        ops = []
        for customer_id, at in latest.items():
            ops.append(UpdateOne({"_id": customer_id, "last_interaction_at": {"$lt": at}},
                                 {"$set": {"last_interaction_at": at}, "$unset": {"flagged_for": ""}}))
            ops.append(UpdateOne({"_id": customer_id}, {"$setOnInsert": {"last_interaction_at": at}}, upsert=True))
        self.activity.bulk_write(ops, ordered=True)

    def silent(self, since: datetime, before: datetime, limit: int = 500) -> list[Activity]:
        """Customers not flagged whose last interaction is in [since, before), oldest first."""
        docs = self.activity.find({"flagged_for": {"$exists": False},
                                   "last_interaction_at": {"$gte": since, "$lt": before}}
                                  ).sort("last_interaction_at", ASCENDING).limit(limit)
        return [Activity(d["_id"], d["last_interaction_at"]) for d in docs]

    def flag(self, flagged: Sequence[tuple[str, datetime]]) -> None:
        """Mark each customer's churn-risk case opened for that last interaction (unless they have
        interacted since: then the mark would hide the new silence)."""
        if flagged:
            self.activity.bulk_write([UpdateOne({"_id": c, "last_interaction_at": at}, {"$set": {"flagged_for": at}})
                                      for c, at in flagged], ordered=False)

    def erase_customer(self, customer_id: str) -> int:
        return int(self.activity.delete_one({"_id": customer_id}).deleted_count)
