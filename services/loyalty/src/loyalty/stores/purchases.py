"""Loyalty's record of purchases: the first record of each order, its ordinal for the customer, the amount
and the products bought; and the reviews waiting for a purchase (claims). Also the repeat-business figures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from pymongo import ASCENDING, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database

from feedback_shared.mongo import chunks
from loyalty.domain import Doc, PurchaseRecord, ReviewClaim
from loyalty.ports import PurchasesSeen


class MongoPurchaseStore:
    def __init__(self, db: Database[Doc]) -> None:
        self.purchases: Collection[Doc] = db["purchases"]
        self.claims: Collection[Doc] = db["review_claims"]

    def ensure_indexes(self) -> None:
        self.purchases.create_index([("customer_id", ASCENDING)])
        self.claims.create_index([("customer_id", ASCENDING)])

    def seen(self, order_ids: Iterable[str], buyers: Iterable[str],
             products: Iterable[tuple[str, str]]) -> PurchasesSeen:
        """The records of ``order_ids``, the purchase count of each buyer, which (customer, product) pairs
        were bought, and the buyers' claims: plain indexed finds, ``IN_CHUNK`` (``feedback_shared.mongo``) ids at a time. (One
        aggregate with ``$facet`` and ``$unionWith`` did it in one round trip, but the embedded database
        scanned for it: 5 s for a batch over 15,000 purchases.)"""
        orders, counted, pairs = sorted(set(order_ids)), sorted(set(buyers)), set(products)
        records: dict[str, PurchaseRecord] = {}
        for chunk in chunks(orders):
            records |= {d["_id"]: PurchaseRecord.from_doc(d) for d in self.purchases.find({"_id": {"$in": chunk}})}
        customers = sorted(set(counted) | {c for c, _ in pairs})
        wanted = set(counted)
        counts: dict[str, int] = {}
        bought: set[tuple[str, str]] = set()
        for chunk in chunks(customers):
            for doc in self.purchases.find({"customer_id": {"$in": chunk}}, {"customer_id": 1, "skus": 1}):
                customer = doc["customer_id"]
                if customer in wanted:
                    counts[customer] = counts.get(customer, 0) + 1
                bought |= {(customer, sku) for sku in doc.get("skus", ()) if (customer, sku) in pairs}
        claims = [ReviewClaim.from_doc(d) for chunk in chunks(counted)
                  for d in self.claims.find({"customer_id": {"$in": chunk}})]
        return PurchasesSeen(claims=claims, records=records, counts=counts, products_bought=bought)

    def record(self, purchases: Sequence[PurchaseRecord], session: ClientSession) -> None:
        if purchases:
            self.purchases.insert_many([p.to_doc() for p in purchases], ordered=True, session=session)

    def keep_claims(self, claims: Sequence[ReviewClaim], paid: Sequence[str], session: ClientSession) -> None:
        """New claims once each (a redelivered review finds its claim there: ``$setOnInsert``); paid ones go."""
        if claims:
            self.claims.bulk_write([UpdateOne({"_id": c.source_event_id}, {"$setOnInsert": c.to_doc()}, upsert=True)
                                    for c in claims], ordered=True, session=session)
        if paid:
            self.claims.delete_many({"_id": {"$in": list(paid)}}, session=session)

    def figures(self) -> dict[str, dict[str, Decimal]]:
        """Per currency: purchases and revenue, first and repeat (for the repeat-business gauges)."""
        figures: dict[str, dict[str, Decimal]] = {}
        for doc in self.purchases.find({}, {"ordinal": 1, "amount": 1, "currency": 1}):
            f = figures.setdefault(doc.get("currency", "XXX"), {
                "purchases": Decimal(0), "repeat_purchases": Decimal(0), "revenue": Decimal(0),
                "repeat_revenue": Decimal(0)})
            amount = Decimal(doc["amount"])
            f["purchases"] += 1
            f["revenue"] += amount
            if int(doc["ordinal"]) > 1:
                f["repeat_purchases"] += 1
                f["repeat_revenue"] += amount
        return figures
