"""Who is who: CSMs (``csms``) and customers' accounts (``accounts``).

An account document holds what an admin set (CSM, tier, preferences, consents), the tier loyalty
announced (``loyalty_tier``) and the erasure mark (``erased_at``): one read per batch of customers for
all of it. (Tiers were a collection of their own: one more read for every new case. When the CSM was
last paged, the cool-down's clock, is read from the customer's cases: a page goes out when a paged case
opens.)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

from alerts.domain import Account, Csm
from feedback_shared.events import erased_with

Doc = dict[str, Any]
#: Seconds a CSM's record is reused before it is read again (a change through this process's API is
#: seen at once; one made through another replica, within this time).
CSM_CACHE_S = 5.0
#: Fields of an account that the system keeps, not the admin: a ``PUT`` of the account leaves them.
SYSTEM_FIELDS = ("loyalty_tier", "erased_at")


def _account(doc: Doc) -> Account:
    return Account(
        customer_id=doc["_id"], csm_id=doc.get("csm_id"), tier=doc.get("tier") or doc.get("loyalty_tier"),
        preferred_name=doc.get("preferred_name"), preferred_channel=doc.get("preferred_channel"),
        language=doc.get("language"), erased_at=doc.get("erased_at"), email=doc.get("email"),
        time_zone=doc.get("time_zone"), first_name_permitted=bool((doc.get("consent") or {}).get("first_name")),
        marketing_consent=bool((doc.get("consent") or {}).get("marketing")),
    )


class MongoDirectory:
    def __init__(self, db: Database[Doc]) -> None:
        self.csms: Collection[Doc] = db["csms"]
        self.accounts: Collection[Doc] = db["accounts"]
        self._db = db
        self._csm_cache: dict[str, tuple[float, Csm | None]] = {}

    def ensure_indexes(self) -> None:
        self._fold_tiers_into_accounts()

    def _fold_tiers_into_accounts(self) -> None:
        """A database made by an earlier version kept tiers in a collection of their own, and the last
        page of each customer in another (now read from the cases)."""
        names = set(self._db.list_collection_names())
        if "tiers" in names:
            ops = [UpdateOne({"_id": d["_id"]}, {"$set": {"loyalty_tier": d["tier"]}}, upsert=True)
                   for d in self._db["tiers"].find()]
            if ops:
                self.accounts.bulk_write(ops, ordered=False)
            self._db.drop_collection("tiers")
        if "pages" in names:
            self._db.drop_collection("pages")

    # ---- CSMs ------------------------------------------------------------------------------------
    def put_csm(self, csm_id: str, doc: Doc) -> None:
        self.csms.replace_one({"_id": csm_id}, {"_id": csm_id, **doc}, upsert=True)
        self._csm_cache.pop(csm_id, None)

    def csms_by_id(self, csm_ids: Iterable[str]) -> dict[str, Csm]:
        """The CSMs' records; every page needs one, and a few CSMs take most pages (cached)."""
        now = time.monotonic()
        wanted = set(csm_ids)
        stale = sorted(i for i in wanted if (hit := self._csm_cache.get(i)) is None or now - hit[0] >= CSM_CACHE_S)
        if stale:
            found = {d["_id"]: Csm(d["_id"], tuple(d.get("notify", []))) for d in self.csms.find({"_id": {"$in": stale}})}
            for csm_id in stale:
                self._csm_cache[csm_id] = (now, found.get(csm_id))
        return {i: csm for i in wanted if (csm := self._csm_cache[i][1]) is not None}

    # ---- accounts --------------------------------------------------------------------------------
    def put_account(self, customer_id: str, doc: Doc) -> None:
        """Create or replace an account; what the system keeps on it (tier from loyalty, last page,
        erasure mark) stays."""
        current = self.accounts.find_one({"_id": customer_id}, dict.fromkeys(SYSTEM_FIELDS, 1)) or {}
        kept = {k: current[k] for k in SYSTEM_FIELDS if current.get(k) is not None}
        self.accounts.replace_one({"_id": customer_id}, {"_id": customer_id, **doc, **kept}, upsert=True)

    def accounts_by_id(self, customer_ids: Iterable[str]) -> dict[str, Account]:
        wanted = sorted(set(customer_ids))
        if not wanted:
            return {}
        return {d["_id"]: _account(d) for d in self.accounts.find({"_id": {"$in": wanted}})}

    def account(self, customer_id: str | None) -> Account | None:
        return self.accounts_by_id([customer_id]).get(customer_id) if customer_id else None

    def erased_at(self, customer_id: str) -> datetime | None:
        mark = self.accounts.find_one({"_id": customer_id}, {"erased_at": 1})
        return mark.get("erased_at") if mark else None

    def set_tier(self, customer_id: str, tier: str, caused_at: datetime | None = None) -> bool:
        """The loyalty tier, from ``loyalty.points.v1``: alerts' own view of it. Not kept (False) when
        the item that caused it (taken in at ``caused_at``) came before the customer's erasure: loyalty
        may announce it after alerts has erased the customer."""
        if caused_at is not None and erased_with(caused_at, self.erased_at(customer_id)):
            return False
        self.accounts.update_one({"_id": customer_id}, {"$set": {"loyalty_tier": tier}}, upsert=True)
        return True

    def erase_customer(self, customer_id: str, requested_at: datetime) -> int:
        """Replace the account by a mark holding only ``erased_at``; 1 if there was an account."""
        before = self.accounts.find_one({"_id": customer_id}, {"erased_at": 0, "loyalty_tier": 0})
        self.accounts.replace_one({"_id": customer_id}, {"_id": customer_id, "erased_at": requested_at}, upsert=True)
        return int(before is not None and len(before) > 1)
