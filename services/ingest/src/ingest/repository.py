"""Ingest's own record of what it accepted: one document per ``(source, external_id)``.

The document's ``_id`` is that pair, so the database's primary-key uniqueness is what makes a repeat a
duplicate, across restarts and across ingest replicas.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

Status = Literal["pending", "published"]


@dataclass(frozen=True)
class Claim:
    event_id: uuid.UUID
    status: Status


class AcceptedRepository(Protocol):
    def claim(
        self, source: str, external_id: str, event_id: uuid.UUID, kind: str, customer_id: str | None = None
    ) -> Claim: ...

    def mark_published(self, source: str, external_id: str) -> None: ...

    def forget_customer(self, customer_id: str) -> int: ...


def _key(source: str, external_id: str) -> str:
    return f"{source}\x1f{external_id}"


class MongoAcceptedRepository:
    def __init__(self, db: Database[dict[str, Any]]) -> None:
        self.collection: Collection[dict[str, Any]] = db["accepted"]

    def ensure_indexes(self) -> None:
        self.collection.create_index("event_id", unique=True)
        self.collection.create_index("customer_id", sparse=True)

    def claim(
        self, source: str, external_id: str, event_id: uuid.UUID, kind: str, customer_id: str | None = None
    ) -> Claim:
        """Record the item as pending under ``event_id``, or return the earlier claim for it.

        A pending claim means an earlier attempt could not reach the broker: the retry reuses its
        ``event_id``, so downstream sees one id however often the client retries.
        """
        key = _key(source, external_id)
        try:
            self.collection.insert_one({
                "_id": key, "source": source, "external_id": external_id, "kind": kind,
                "event_id": str(event_id), "status": "pending", "created_at": datetime.now(UTC),
                **({"customer_id": customer_id} if customer_id else {}),
            })
            return Claim(event_id, "pending")
        except DuplicateKeyError:
            doc = self.collection.find_one({"_id": key})
            if doc is None:  # deleted in between (erasure); claim again
                return self.claim(source, external_id, event_id, kind, customer_id)
            return Claim(uuid.UUID(doc["event_id"]), doc["status"])

    def mark_published(self, source: str, external_id: str) -> None:
        self.collection.update_one(
            {"_id": _key(source, external_id)},
            {"$set": {"status": "published", "published_at": datetime.now(UTC)}},
        )

    def forget_customer(self, customer_id: str) -> int:
        """Remove ingest's records of a customer (the erasure path). Returns how many went."""
        return int(self.collection.delete_many({"customer_id": customer_id}).deleted_count)
