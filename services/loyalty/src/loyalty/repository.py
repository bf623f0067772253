"""Loyalty's own database: customers (balance, tier), purchases, profiles and the append-only ledger.

Every ledger entry is written in one transaction with the customer's balance, so the balance always
equals the ledger's sum. The ledger's unique key on ``(source_event_id, rule)`` (and the entry id
derived from it) means a redelivered event can never credit twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from feedback_shared.errors import Conflict
from loyalty.points import EARNING_RULES, ORDER_RULES

Doc = dict[str, Any]


class InsufficientBalance(Conflict):
    def __init__(self, balance: int, requested: int) -> None:
        super().__init__(f"insufficient balance: {balance} points, {requested} requested")
        self.balance = balance
        self.requested = requested


@dataclass(frozen=True)
class LedgerEntry:
    entry_id: str
    customer_id: str
    source_event_id: str
    rule: str
    points: int
    at: datetime
    order_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Applied:
    entry: LedgerEntry
    balance: int
    created: bool
    #: The customer's tier as the write saw it (announcements carry it; no second read).
    tier: str | None = None


@dataclass(frozen=True)
class CustomerState:
    customer_id: str
    balance: int = 0
    tier: str | None = None
    last_activity_at: datetime | None = None
    last_surprise_at: datetime | None = None


class LoyaltyStore(Protocol):
    def record_purchase(self, order_id: str, customer_id: str, *, amount: Decimal, currency: str,
                        at: datetime, event_id: str) -> tuple[int, Decimal]: ...
    def apply(self, entry: LedgerEntry, *, clamp_to_balance: bool = False,
              require_balance: bool = False) -> Applied: ...
    def order_points(self, order_id: str) -> int: ...
    def customer(self, customer_id: str) -> CustomerState: ...
    def set_tier(self, customer_id: str, tier: str, cause_id: str) -> tuple[str | None, bool]: ...
    def put_profile(self, customer_id: str, profile: Doc) -> None: ...
    def inactive_since(self, before: datetime, limit: int = 500) -> list[CustomerState]: ...
    def earned_since(self, customer_id: str, since: datetime) -> int: ...
    def profile(self, customer_id: str) -> Doc | None: ...
    def erased_at(self, customer_id: str) -> datetime | None: ...


def _entry(doc: Doc) -> LedgerEntry:
    return LedgerEntry(
        entry_id=doc["_id"], customer_id=doc["customer_id"], source_event_id=doc["source_event_id"],
        rule=doc["rule"], points=int(doc["points"]), at=doc["at"], order_id=doc.get("order_id"),
        details=doc.get("details", {}),
    )


class LoyaltyRepository:
    def __init__(self, client: MongoClient[Doc], db: Database[Doc]) -> None:
        self.client = client
        self.customers: Collection[Doc] = db["customers"]
        self.purchases: Collection[Doc] = db["purchases"]
        self.ledger: Collection[Doc] = db["ledger"]
        self.profiles: Collection[Doc] = db["profiles"]
        #: One mark per erased customer: when ingest took the request (see ``anonymise_customer``).
        self.erasures: Collection[Doc] = db["erasures"]

    def ensure_indexes(self) -> None:
        self.ledger.create_index([("source_event_id", ASCENDING), ("rule", ASCENDING)], unique=True)
        self.ledger.create_index([("customer_id", ASCENDING), ("at", DESCENDING)])
        self.ledger.create_index([("order_id", ASCENDING)])
        self.purchases.create_index([("customer_id", ASCENDING)])
        self.customers.create_index([("last_activity_at", ASCENDING)])

    # ---- purchases -------------------------------------------------------------------------------
    def record_purchase(self, order_id: str, customer_id: str, *, amount: Decimal, currency: str,
                        at: datetime, event_id: str) -> tuple[int, Decimal]:
        """Record the purchase once; return its ordinal for the customer (1 = first) and the amount
        first recorded. One customer's events arrive in order on one partition, so counting then
        inserting is safe; the same order again (a redelivery, or a resend with other details) finds
        what was recorded first, so the decision is the first one."""
        # Insert first: a purchase seen before fails on its _id and is read back (one query fewer for
        # the usual case, a new purchase).
        ordinal = self.purchases.count_documents({"customer_id": customer_id}) + 1
        try:
            self.purchases.insert_one({
                "_id": order_id, "customer_id": customer_id, "ordinal": ordinal, "amount": str(amount),
                "currency": currency, "at": at, "event_id": event_id,
            })
        except DuplicateKeyError:
            stored = self.purchases.find_one({"_id": order_id})
            if stored is not None:
                return int(stored["ordinal"]), Decimal(stored["amount"])
            raise
        return ordinal, amount

    # ---- the ledger ------------------------------------------------------------------------------
    def apply(self, entry: LedgerEntry, *, clamp_to_balance: bool = False,
              require_balance: bool = False) -> Applied:
        """Append ``entry`` and move the balance by its points, in one transaction.

        ``clamp_to_balance``: a debit takes at most the balance. ``require_balance``: a debit larger
        than the balance raises ``InsufficientBalance``. An entry already on the ledger is returned
        unchanged with ``created=False``.
        """

        def write(session: ClientSession) -> Applied:
            # An entry already on the ledger fails the insert below (its id is unique) and is read back
            # after. Only a redemption looks first: a repeated request must get its first answer even
            # when the balance no longer covers it.
            if require_balance and (existing := self.ledger.find_one({"_id": entry.entry_id}, session=session)):
                state = self.customers.find_one({"_id": entry.customer_id}, session=session) or {}
                return Applied(_entry(existing), int(state.get("balance", 0)), created=False, tier=state.get("tier"))
            state = self.customers.find_one({"_id": entry.customer_id}, session=session) or {}
            balance = int(state.get("balance", 0))
            points = entry.points
            if points < 0 and clamp_to_balance:
                points = -min(-points, max(balance, 0))
            if points < 0 and require_balance and balance + points < 0:
                raise InsufficientBalance(balance, -points)
            final = replace(entry, points=points)
            self.ledger.insert_one({
                "_id": final.entry_id, "customer_id": final.customer_id, "source_event_id": final.source_event_id,
                "rule": final.rule, "points": final.points, "at": final.at, "order_id": final.order_id,
                "details": final.details,
            }, session=session)
            latest = {"last_activity_at": final.at}
            if final.rule == "surprise_bonus":
                latest["last_surprise_at"] = final.at
            self.customers.update_one(
                {"_id": final.customer_id}, {"$inc": {"balance": points}, "$max": latest}, upsert=True,
                session=session,
            )
            return Applied(final, balance + points, created=True, tier=state.get("tier"))

        try:
            with self.client.start_session() as session:
                result: Applied = session.with_transaction(write)
                return result
        except DuplicateKeyError:
            # Applied before (a redelivery), or by another worker at the same moment (a rebalance): once.
            existing = self.ledger.find_one({"_id": entry.entry_id})
            if existing is None:
                raise
            state = self.customer(entry.customer_id)
            return Applied(_entry(existing), state.balance, created=False, tier=state.tier)

    def order_points(self, order_id: str) -> int:
        """Points an order earned and has not had reversed."""
        return sum(int(e["points"]) for e in self.ledger.find(
            {"order_id": order_id, "rule": {"$in": list(ORDER_RULES)}}, {"points": 1}))

    def ledger_sum(self, customer_id: str) -> int:
        return sum(int(e["points"]) for e in self.ledger.find({"customer_id": customer_id}, {"points": 1}))

    def earned_since(self, customer_id: str, since: datetime) -> int:
        """Points earned in the window, net of returns; redemptions and expiry do not lower it."""
        rules = [*EARNING_RULES, "return_reversal"]
        return sum(int(e["points"]) for e in self.ledger.find(
            {"customer_id": customer_id, "rule": {"$in": rules}, "at": {"$gte": since}}, {"points": 1}))

    def entries(self, customer_id: str, *, limit: int = 50, offset: int = 0) -> list[LedgerEntry]:
        cursor = self.ledger.find({"customer_id": customer_id}).sort([("at", DESCENDING), ("_id", ASCENDING)])
        return [_entry(d) for d in cursor.skip(offset).limit(limit)]

    def count_entries(self, customer_id: str) -> int:
        return self.ledger.count_documents({"customer_id": customer_id})

    # ---- customers and profiles ------------------------------------------------------------------
    def customer(self, customer_id: str) -> CustomerState:
        doc = self.customers.find_one({"_id": customer_id}) or {}
        return CustomerState(customer_id, int(doc.get("balance", 0)), doc.get("tier"),
                             doc.get("last_activity_at"), doc.get("last_surprise_at"))

    def set_tier(self, customer_id: str, tier: str, cause_id: str) -> tuple[str | None, bool]:
        """Store the tier. Returns the tier before and whether ``cause_id`` changed it, now or in an
        earlier delivery of the same event (so its announcement can be repeated, never lost)."""
        doc = self.customers.find_one({"_id": customer_id}) or {}
        current = doc.get("tier")
        if current == tier:
            return doc.get("tier_previous"), doc.get("tier_cause") == cause_id
        self.customers.update_one(
            {"_id": customer_id},
            {"$set": {"tier": tier, "tier_previous": current, "tier_cause": cause_id}}, upsert=True,
        )
        return current, True

    def put_profile(self, customer_id: str, profile: Doc) -> None:
        self.profiles.replace_one({"_id": customer_id}, {"_id": customer_id, **profile}, upsert=True)

    def profile(self, customer_id: str) -> Doc | None:
        return self.profiles.find_one({"_id": customer_id})

    def inactive_since(self, before: datetime, limit: int = 500) -> list[CustomerState]:
        docs = self.customers.find({"last_activity_at": {"$lt": before}, "balance": {"$gt": 0}}).limit(limit)
        return [CustomerState(d["_id"], int(d.get("balance", 0)), d.get("tier"), d.get("last_activity_at"),
                              d.get("last_surprise_at")) for d in docs]

    # ---- erasure and figures ---------------------------------------------------------------------
    def anonymise_customer(self, customer_id: str, pseudonym: str, requested_at: datetime) -> int:
        """Replace the customer's id with a pseudonym on the ledger and purchases; amounts stay for audit.

        Leaves a mark with ``requested_at`` (when ingest took the request): events from before it can
        still be in flight on the other topics, and ``LoyaltyService`` keeps them off the real id."""
        self.erasures.replace_one({"_id": customer_id}, {"_id": customer_id, "erased_at": requested_at},
                                  upsert=True)
        entries = self.ledger.update_many({"customer_id": customer_id},
                                          {"$set": {"customer_id": pseudonym, "anonymised": True}})
        self.purchases.update_many({"customer_id": customer_id},
                                   {"$set": {"customer_id": pseudonym, "anonymised": True}})
        self.customers.delete_one({"_id": customer_id})
        self.profiles.delete_one({"_id": customer_id})
        return int(entries.modified_count)

    def erased_at(self, customer_id: str) -> datetime | None:
        doc = self.erasures.find_one({"_id": customer_id})
        return doc["erased_at"] if doc else None

    def purchase_figures(self) -> dict[str, dict[str, Decimal]]:
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


__all__: Sequence[str] = (
    "Applied", "CustomerState", "InsufficientBalance", "LedgerEntry", "LoyaltyRepository", "LoyaltyStore",
)
