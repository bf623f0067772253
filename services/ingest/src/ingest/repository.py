"""Ingest's own record of what it accepted: one document per ``(source, external_id)``.

The document's ``_id`` is that pair, so the database's primary-key uniqueness is what makes a repeat a
duplicate, across restarts and across ingest replicas. A claim is pending until the broker acknowledged
its event; then a marker with the same ``_id`` goes into ``published``. (An insert into a collection with
only its primary key, rather than an update of the claim, which carries two more indexes: on SecantusDB
0.02 s instead of 0.27 s for 500, and the update had been the most expensive call of ``make bench``.)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

Status = Literal["pending", "published"]
DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class Claim:
    event_id: uuid.UUID
    status: Status


@dataclass(frozen=True)
class ClaimRequest:
    source: str
    external_id: str
    event_id: uuid.UUID
    kind: str
    customer_id: str | None = None


class AcceptedRepository(Protocol):
    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]: ...

    def mark_published_many(self, keys: Sequence[tuple[str, str]]) -> None: ...

    def forget_customer(self, customer_id: str) -> int: ...


def _key(source: str, external_id: str) -> str:
    return f"{source}\x1f{external_id}"


class MongoAcceptedRepository:
    def __init__(self, db: Database[dict[str, Any]]) -> None:
        self.collection: Collection[dict[str, Any]] = db["accepted"]
        self.published: Collection[dict[str, Any]] = db["published"]

    def ensure_indexes(self) -> None:
        # For erasure. (Nothing looks claims up by event_id, a uuid4 per claim: the unique index on it,
        # made by earlier versions, doubled the cost of every insert on the embedded database.)
        self.collection.create_index("customer_id", sparse=True)
        if "event_id_1" in self.collection.index_information():
            self.collection.drop_index("event_id_1")

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]:
        """Record each item as pending under its ``event_id``, or return the earlier claim for it.

        A pending earlier claim means an earlier attempt could not reach the broker: the retry reuses
        its ``event_id``, so downstream sees one id however often the client retries. One round trip
        for the inserts and one for the items already claimed, whatever the batch size.
        """
        now = datetime.now(UTC)
        docs = [{
            "_id": _key(r.source, r.external_id), "source": r.source, "external_id": r.external_id,
            "kind": r.kind, "event_id": str(r.event_id), "status": "pending", "created_at": now,
            **({"customer_id": r.customer_id} if r.customer_id else {}),
        } for r in requests]
        taken: set[str] = set()
        try:
            self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                if error.get("code") != DUPLICATE_KEY:
                    raise
                taken.add(docs[error["index"]]["_id"])
        earlier = {d["_id"]: d for d in self.collection.find({"_id": {"$in": list(taken)}})} if taken else {}
        published = {d["_id"] for d in self.published.find({"_id": {"$in": list(earlier)}}, {"_id": 1})} if earlier else set()
        claims = []
        for request, doc in zip(requests, docs, strict=True):
            if doc["_id"] not in taken:
                claims.append(Claim(request.event_id, "pending"))
            elif doc["_id"] in earlier:
                status: Status = "published" if doc["_id"] in published else "pending"
                claims.append(Claim(uuid.UUID(earlier[doc["_id"]]["event_id"]), status))
            else:  # erased in between: claim again
                claims.extend(self.claim_many([request]))
        return claims

    def mark_published_many(self, keys: Sequence[tuple[str, str]]) -> None:
        now = datetime.now(UTC)
        try:
            self.published.insert_many([{"_id": _key(source, external_id), "published_at": now}
                                        for source, external_id in keys], ordered=False)
        except BulkWriteError as exc:  # marked by an earlier attempt: nothing to do for those
            if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                raise

    def forget_customer(self, customer_id: str) -> int:
        """Remove ingest's records of a customer (the erasure path). Returns how many went."""
        keys = [d["_id"] for d in self.collection.find({"customer_id": customer_id}, {"_id": 1})]
        self.published.delete_many({"_id": {"$in": keys}})
        return int(self.collection.delete_many({"customer_id": customer_id}).deleted_count)
