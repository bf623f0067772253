"""Customer messages due later (delay notices, purchase follow-ups), swept when due."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from alerts.customer_contact import ScheduledContact
from alerts.stores._bulk import insert_new

Doc = dict[str, Any]
_FIELDS = tuple(f for f in ScheduledContact.__dataclass_fields__ if f != "contact_id")


def _contact(doc: Doc) -> ScheduledContact:
    fields: Doc = {f: doc.get(f) for f in _FIELDS}
    return ScheduledContact(contact_id=doc["_id"], **fields)


class MongoScheduledContacts:
    def __init__(self, db: Database[Doc]) -> None:
        self.scheduled: Collection[Doc] = db["scheduled_contacts"]

    def ensure_indexes(self) -> None:
        self.scheduled.create_index([("status", ASCENDING), ("due_at", ASCENDING)])
        self.scheduled.create_index([("customer_id", ASCENDING)])

    def schedule(self, contacts: Sequence[ScheduledContact]) -> int:
        """Add those not scheduled yet (a redelivered event schedules nothing twice); how many were added."""
        unique = list({c.contact_id: c for c in contacts}.values())
        docs = [{"_id": c.contact_id, **{k: v for k, v in asdict(c).items() if k != "contact_id"},
                 "status": "pending"} for c in unique]
        return len(insert_new(self.scheduled, docs))

    def due(self, now: datetime, limit: int) -> list[ScheduledContact]:
        found = self.scheduled.find({"status": "pending", "due_at": {"$lte": now}}).sort("due_at", ASCENDING)
        return [_contact(d) for d in found.limit(limit)]

    def settle(self, contact_id: str, outcome: str, now: datetime) -> bool:
        """Mark it done (sent or skipped); False if it was done already (another sweep, a redelivery)."""
        done = self.scheduled.update_one({"_id": contact_id, "status": "pending"},
                                         {"$set": {"status": "done", "outcome": outcome, "settled_at": now}})
        return bool(done.modified_count)

    def erase_customer(self, customer_id: str) -> int:
        return int(self.scheduled.delete_many({"customer_id": customer_id}).deleted_count)
