"""Loyalty's record of purchases: the first record of each order, its ordinal for the customer, the amount
and the products bought; and the reviews waiting for a purchase (claims). Also the repeat-business figures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from pymongo import ASCENDING, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database

from loyalty.domain import Doc, PurchaseRecord, ReviewClaim
from loyalty.ports import PurchasesSeen
from loyalty.stores._bulk import ONE_REPLY


class MongoPurchaseStore:
    def __init__(self, db: Database[Doc]) -> None:
        self.purchases: Collection[Doc] = db["purchases"]
        self.claims: Collection[Doc] = db["review_claims"]

    def ensure_indexes(self) -> None:
        self.purchases.create_index([("customer_id", ASCENDING)])
        self.claims.create_index([("customer_id", ASCENDING)])

    def seen(self, order_ids: Iterable[str], buyers: Iterable[str],
             products: Iterable[tuple[str, str]]) -> PurchasesSeen:
        """One aggregate: the records of ``order_ids``, the purchase count of each buyer (computed by the
        server), which (customer, product) pairs were bought, and the buyers' claims (appended by
        ``$unionWith``). The leading ``$match`` uses the ``_id`` and ``customer_id`` indexes; the facets only
        split what it found."""
        orders, counted, pairs = sorted(set(order_ids)), sorted(set(buyers)), set(products)
        reviewers, skus = sorted({c for c, _ in pairs}), sorted({s for _, s in pairs})
        facets: dict[str, list[Doc]] = {}
        wanted: list[Doc] = []
        if orders:
            wanted.append({"_id": {"$in": orders}})
            facets["records"] = [{"$match": {"_id": {"$in": orders}}}]
        if counted:
            wanted.append({"customer_id": {"$in": counted}})
            facets["counts"] = [{"$match": {"customer_id": {"$in": counted}}},
                                {"$group": {"_id": "$customer_id", "n": {"$sum": 1}}}]
        if pairs:
            products_of = {"customer_id": {"$in": reviewers}, "skus": {"$in": skus}}
            wanted.append(products_of)
            facets["products"] = [{"$match": products_of}, {"$project": {"customer_id": 1, "skus": 1}}]
        if not facets:
            return PurchasesSeen()
        pipeline: list[Doc] = [{"$match": {"$or": wanted}}, {"$facet": facets}]
        if counted:
            pipeline.append({"$unionWith": {"coll": self.claims.name, "pipeline": [
                {"$match": {"customer_id": {"$in": counted}}}, {"$addFields": {"_claim": {"$literal": True}}}]}})
        [found, *claims] = self.purchases.aggregate(pipeline, batchSize=ONE_REPLY)
        return PurchasesSeen(
            claims=[ReviewClaim.from_doc(d) for d in claims if d.pop("_claim", False)],
            records={d["_id"]: PurchaseRecord.from_doc(d) for d in found.get("records", [])},
            counts={d["_id"]: int(d["n"]) for d in found.get("counts", [])},
            products_bought={(d["customer_id"], sku) for d in found.get("products", []) for sku in d.get("skus", ())
                             if (d["customer_id"], sku) in pairs},
        )

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
