"""The append-only ledger: one entry per (business event, rule), its ``_id`` derived from both."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database

from loyalty.domain import Doc, LedgerEntry
from loyalty.points import ORDER_RULES, TIER_RULES
from loyalty.ports import LedgerSeen
from loyalty.stores._bulk import ONE_REPLY


class MongoLedgerStore:
    def __init__(self, db: Database[Doc]) -> None:
        self.ledger: Collection[Doc] = db["ledger"]

    def ensure_indexes(self) -> None:
        self.ledger.create_index([("source_event_id", ASCENDING), ("rule", ASCENDING)], unique=True)
        self.ledger.create_index([("customer_id", ASCENDING), ("at", DESCENDING)])
        self.ledger.create_index([("order_id", ASCENDING)])

    def seen(self, source_event_ids: Iterable[str], returned_orders: Iterable[str],
             windows: Mapping[str, datetime]) -> LedgerSeen:
        """One aggregate: the entries of the batch's business events and of the orders it returns, and
        each customer's tier points since their window start (summed by the server)."""
        sources, orders = sorted(set(source_event_ids)), sorted(set(returned_orders))
        entries_of: list[Doc] = []
        if sources:
            entries_of.append({"source_event_id": {"$in": sources}})
        if orders:
            entries_of.append({"order_id": {"$in": orders}, "rule": {"$in": list(ORDER_RULES)}})
        earned_of: list[Doc] = [{"customer_id": c, "at": {"$gte": since}, "rule": {"$in": list(TIER_RULES)}}
                                for c, since in sorted(windows.items())]
        facets: dict[str, list[Doc]] = {}
        if entries_of:
            facets["entries"] = [{"$match": {"$or": entries_of}}]
        if earned_of:
            facets["earned"] = [{"$match": {"$or": earned_of}},
                                {"$group": {"_id": "$customer_id", "points": {"$sum": "$points"}}}]
        if not facets:
            return LedgerSeen()
        pipeline = [{"$match": {"$or": entries_of + earned_of}}, {"$facet": facets}]
        [found] = self.ledger.aggregate(pipeline, batchSize=ONE_REPLY)
        return LedgerSeen(entries={d["_id"]: LedgerEntry.from_doc(d) for d in found.get("entries", [])},
                          earned={d["_id"]: int(d["points"]) for d in found.get("earned", [])})

    def append(self, entries: Sequence[LedgerEntry], session: ClientSession) -> None:
        if entries:
            self.ledger.insert_many([e.to_doc() for e in entries], ordered=True, session=session)

    def earned_since(self, customer_id: str, since: datetime) -> int:
        """Points earned in the window, net of returns; redemptions and expiry do not lower it."""
        return sum(int(e["points"]) for e in self.ledger.find(
            {"customer_id": customer_id, "rule": {"$in": list(TIER_RULES)}, "at": {"$gte": since}}, {"points": 1}))

    def ledger_sum(self, customer_id: str) -> int:
        return sum(int(e["points"]) for e in self.ledger.find({"customer_id": customer_id}, {"points": 1}))

    def entries(self, customer_id: str, *, limit: int = 50, offset: int = 0) -> list[LedgerEntry]:
        cursor = self.ledger.find({"customer_id": customer_id}).sort([("at", DESCENDING), ("_id", ASCENDING)])
        return [LedgerEntry.from_doc(d) for d in cursor.skip(offset).limit(limit)]

    def count_entries(self, customer_id: str) -> int:
        return self.ledger.count_documents({"customer_id": customer_id})
