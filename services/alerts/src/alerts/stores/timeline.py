"""The customer's timeline: alerts' read model of what happened with a customer across channels, for
the case page. Entries are keyed by the event they come from, so a redelivery adds nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from alerts.stores._bulk import insert_new

Doc = dict[str, Any]


class MongoTimeline:
    def __init__(self, db: Database[Doc]) -> None:
        self.entries: Collection[Doc] = db["timeline"]

    def ensure_indexes(self) -> None:
        self.entries.create_index([("customer_id", ASCENDING), ("at", DESCENDING)])

    def add(self, entries: Sequence[Doc]) -> int:
        """Insert each entry (its ``_id`` the source event's) once; how many were new."""
        return len(insert_new(self.entries, list(entries))) if entries else 0

    def of(self, customer_id: str, limit: int = 100) -> list[Doc]:
        return list(self.entries.find({"customer_id": customer_id}).sort("at", DESCENDING).limit(limit))

    def erase_customer(self, customer_id: str) -> int:
        return int(self.entries.delete_many({"customer_id": customer_id}).deleted_count)
