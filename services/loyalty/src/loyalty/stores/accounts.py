"""Customers' accounts (balance, tier, clocks), their profiles and their erasure marks, in MongoDB."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database

from loyalty.decide import AccountChange
from loyalty.domain import Account, Doc, Profile
from loyalty.stores._bulk import ONE_REPLY


def _account(customer_id: str, doc: Doc | None, profile: Doc | None = None, erasure: Doc | None = None) -> Account:
    doc = doc or {}
    return Account(
        customer_id=customer_id, balance=int(doc.get("balance", 0)), tier=doc.get("tier"),
        tier_previous=doc.get("tier_previous"), tier_cause=doc.get("tier_cause"),
        last_activity_at=doc.get("last_activity_at"), last_surprise_at=doc.get("last_surprise_at"),
        profile=Profile(profile.get("preferred_name"), profile.get("language")) if profile else None,
        erased_at=erasure["erased_at"] if erasure else None,
        stored_balance=int(doc["balance"]) if "balance" in doc else None,
        stored_revision=int(doc["revision"]) if "revision" in doc else None, exists=bool(doc),
    )


class MongoAccountStore:
    def __init__(self, db: Database[Doc]) -> None:
        self.customers: Collection[Doc] = db["customers"]
        self.profiles: Collection[Doc] = db["profiles"]
        #: One mark per erased customer: when ingest took the request (see ``anonymise``).
        self.erasures: Collection[Doc] = db["erasures"]

    def ensure_indexes(self) -> None:
        self.customers.create_index([("last_activity_at", ASCENDING)])

    def accounts_by_id(self, customer_ids: Iterable[str]) -> dict[str, Account]:
        """One round trip for the three collections: the accounts, with the profiles and the erasure marks
        of the same ids appended (``$unionWith``), each tagged with where it came from."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}

        def tagged(kind: str) -> list[Doc]:
            return [{"$match": {"_id": {"$in": ids}}}, {"$addFields": {"_of": {"$literal": kind}}}]

        pipeline = [*tagged("account"),
                    {"$unionWith": {"coll": self.profiles.name, "pipeline": tagged("profile")}},
                    {"$unionWith": {"coll": self.erasures.name, "pipeline": tagged("erasure")}}]
        found: dict[str, dict[str, Doc]] = {}
        for doc in self.customers.aggregate(pipeline, batchSize=ONE_REPLY):
            found.setdefault(doc["_id"], {})[doc.pop("_of")] = doc
        return {c: _account(c, parts.get("account"), parts.get("profile"), parts.get("erasure"))
                for c, parts in found.items()}

    def account(self, customer_id: str) -> Account:
        return _account(customer_id, self.customers.find_one({"_id": customer_id}))

    def put_profile(self, customer_id: str, profile: Profile) -> None:
        self.profiles.update_one({"_id": customer_id}, {"$set": {"preferred_name": profile.preferred_name,
                                                                 "language": profile.language}}, upsert=True)

    def inactive_since(self, before: datetime, limit: int = 500) -> list[Account]:
        docs = self.customers.find({"last_activity_at": {"$lt": before}, "balance": {"$gt": 0}}).limit(limit)
        return [_account(d["_id"], d) for d in docs]

    def move(self, changes: Sequence[AccountChange], session: ClientSession) -> None:
        """One ``bulk_write`` for the batch: each account ``$inc``-ed by the sum of its new entries, only if
        its balance and revision are still the ones decided on. A balance that moved, an account written
        or created since makes the upsert collide on ``_id``, which aborts the transaction: nothing is
        written twice or lost."""
        ops: list[UpdateOne] = []
        for change in changes:
            account = change.account
            stored: Any = account.stored_balance if account.stored_balance is not None else {"$exists": False}
            revision: Any = account.stored_revision if account.stored_revision is not None else {"$exists": False}
            update: Doc = {"$inc": {"balance": change.points, "revision": 1}}
            latest = {k: v for k, v in (("last_activity_at", change.last_activity_at),
                                        ("last_surprise_at", change.last_surprise_at)) if v is not None}
            if latest:
                update["$max"] = latest
            if change.tier is not None:
                update["$set"] = {"tier": change.tier, "tier_previous": change.tier_previous,
                                  "tier_cause": change.tier_cause}
            ops.append(UpdateOne({"_id": account.customer_id, "balance": stored, "revision": revision}, update,
                                 upsert=True))
        if ops:
            self.customers.bulk_write(ops, ordered=True, session=session)
