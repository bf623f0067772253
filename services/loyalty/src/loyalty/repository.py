"""Loyalty's own database: the purchases seen and the append-only points ledger.

The ledger has a unique key on ``(source_event_id, rule)``: a redelivered event can never credit twice.
The balance is derived from the ledger (its sum), so the two cannot disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

Doc = dict[str, Any]


class LoyaltyRepository:
    def __init__(self, db: Database[Doc]) -> None:
        self.purchases: Collection[Doc] = db["purchases"]
        self.ledger: Collection[Doc] = db["ledger"]

    def ensure_indexes(self) -> None:
        self.ledger.create_index([("source_event_id", ASCENDING), ("rule", ASCENDING)], unique=True)
        self.ledger.create_index([("customer_id", ASCENDING), ("created_at", DESCENDING)])
        self.ledger.create_index([("order_id", ASCENDING)])
        self.purchases.create_index([("customer_id", ASCENDING)])

    def record_purchase(self, order_id: str, customer_id: str, doc: Doc) -> int:
        """Record the purchase once and return its ordinal for the customer (1 = first).

        One customer's events arrive in order on one partition, so counting then inserting is safe;
        a redelivery finds the stored ordinal.
        """
        existing = self.purchases.find_one({"_id": order_id})
        if existing is not None:
            return int(existing["ordinal"])
        ordinal = self.purchases.count_documents({"customer_id": customer_id}) + 1
        try:
            self.purchases.insert_one({"_id": order_id, "customer_id": customer_id, "ordinal": ordinal, **doc})
        except DuplicateKeyError:
            stored = self.purchases.find_one({"_id": order_id})
            return int(stored["ordinal"]) if stored else ordinal
        return ordinal

    def append(self, entry: Doc) -> bool:
        """Append a ledger entry; False if this (source event, rule) was already credited."""
        try:
            self.ledger.insert_one(entry)
            return True
        except DuplicateKeyError:
            return False

    def order_points(self, order_id: str) -> int:
        """Points an order earned and has not yet had reversed."""
        return sum(int(e["points"]) for e in self.ledger.find({"order_id": order_id}, {"points": 1}))

    def balance(self, customer_id: str) -> int:
        return sum(int(e["points"]) for e in self.ledger.find({"customer_id": customer_id}, {"points": 1}))

    def earned(self, customer_id: str, since: datetime | None = None) -> int:
        query: Doc = {"customer_id": customer_id, "points": {"$gt": 0}}
        if since is not None:
            query["created_at"] = {"$gte": since}
        return sum(int(e["points"]) for e in self.ledger.find(query, {"points": 1}))

    def entries(self, customer_id: str, limit: int = 50) -> list[Doc]:
        return list(self.ledger.find({"customer_id": customer_id}).sort("created_at", DESCENDING).limit(limit))

    def anonymise_customer(self, customer_id: str, pseudonym: str) -> int:
        """Replace the customer's id with a pseudonym on the ledger and purchases; amounts stay for audit."""
        entries = self.ledger.update_many({"customer_id": customer_id},
                                          {"$set": {"customer_id": pseudonym, "anonymised": True}})
        self.purchases.update_many({"customer_id": customer_id},
                                   {"$set": {"customer_id": pseudonym, "anonymised": True}})
        return int(entries.modified_count)

