"""Loyalty's typed records: ledger entries, accounts and purchases, as the core and the stores use them.

No I/O here. The stores turn documents into these records and back (``from_doc`` / ``to_doc``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from feedback_shared.errors import Conflict

Doc = dict[str, Any]


class InsufficientBalance(Conflict):
    def __init__(self, balance: int, requested: int) -> None:
        super().__init__(f"insufficient balance: {balance} points, {requested} requested")
        self.balance = balance
        self.requested = requested


class WriteConflict(Exception):
    """A batch's writes met something written since its state was loaded (another replica during a
    rebalance, a redemption moving the balance): nothing was written; load again and decide again."""


@dataclass(frozen=True)
class LedgerEntry:
    """One line of the append-only ledger. ``entry_id`` is derived from ``(source_event_id, rule)``, so
    the same business event decided twice is the same entry."""

    entry_id: str
    customer_id: str
    source_event_id: str
    rule: str
    points: int
    at: datetime
    order_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: Doc) -> LedgerEntry:
        return cls(entry_id=doc["_id"], customer_id=doc["customer_id"], source_event_id=doc["source_event_id"],
                   rule=doc["rule"], points=int(doc["points"]), at=doc["at"], order_id=doc.get("order_id"),
                   details=doc.get("details", {}))

    def to_doc(self) -> Doc:
        return {"_id": self.entry_id, "customer_id": self.customer_id, "source_event_id": self.source_event_id,
                "rule": self.rule, "points": self.points, "at": self.at, "order_id": self.order_id,
                "details": self.details}


@dataclass(frozen=True)
class Profile:
    """How to address the customer (from ``customer.profiles.v1``)."""

    preferred_name: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class Account:
    """What loyalty holds on a customer: balance, tier, clocks, how to address them, and their erasure
    mark (kept apart from the account, which the erasure deletes)."""

    customer_id: str
    balance: int = 0
    tier: str | None = None
    #: The tier before the last change, and the event that caused it (a redelivery of that event
    #: announces the change again, under the same id).
    tier_previous: str | None = None
    tier_cause: str | None = None
    last_activity_at: datetime | None = None
    last_surprise_at: datetime | None = None
    profile: Profile | None = None
    #: When ingest took the customer's erasure request: items taken in before it stay off this id.
    erased_at: datetime | None = None
    #: The balance as stored (None: no account, or none written yet). Writes are conditional on it, so a
    #: balance moved since it was read (a redemption) makes the batch decide again instead of clamping
    #: against a stale figure.
    stored_balance: int | None = None
    #: The account's write counter as stored (None: none written yet). Every batch write bumps it and is
    #: conditional on it, including a batch that only files a review claim and moves no points: a claim
    #: and the purchase that pays it, decided at the same moment by the two agents, then meet on this
    #: document, and the later one decides again and sees the other (no write skew).
    stored_revision: int | None = None
    exists: bool = False


@dataclass(frozen=True)
class PurchaseRecord:
    """A purchase as loyalty first recorded it: the customer's ``ordinal``-th (1 = first), the amount then,
    and the products bought (the review bonus is paid only for an order or product bought)."""

    order_id: str
    customer_id: str
    ordinal: int
    amount: Decimal
    currency: str
    at: datetime
    event_id: str
    skus: tuple[str, ...] = ()

    @classmethod
    def from_doc(cls, doc: Doc) -> PurchaseRecord:
        return cls(order_id=doc["_id"], customer_id=doc["customer_id"], ordinal=int(doc["ordinal"]),
                   amount=Decimal(doc["amount"]), currency=doc.get("currency", "XXX"), at=doc["at"],
                   event_id=doc.get("event_id", ""), skus=tuple(doc.get("skus", ())))

    def to_doc(self) -> Doc:
        return {"_id": self.order_id, "customer_id": self.customer_id, "ordinal": self.ordinal,
                "amount": str(self.amount), "currency": self.currency, "at": self.at, "event_id": self.event_id,
                "skus": list(self.skus)}


@dataclass(frozen=True)
class ReviewClaim:
    """A review of an order or product the customer has no purchase of on record yet. Commerce and
    feedback come on different topics (and purchases may come from a nightly export), so a review can
    arrive first: its bonus is paid when the purchase does, by the customer who made the claim."""

    #: The bonus's business id (customer and what they reviewed): its ledger entry is keyed on it.
    source_event_id: str
    customer_id: str
    order_id: str | None
    product_id: str | None
    at: datetime
    trace_id: str

    @classmethod
    def from_doc(cls, doc: Doc) -> ReviewClaim:
        return cls(source_event_id=doc["_id"], customer_id=doc["customer_id"], order_id=doc.get("order_id"),
                   product_id=doc.get("product_id"), at=doc["at"], trace_id=doc.get("trace_id", ""))

    def to_doc(self) -> Doc:
        return {"_id": self.source_event_id, "customer_id": self.customer_id, "order_id": self.order_id,
                "product_id": self.product_id, "at": self.at, "trace_id": self.trace_id}

    def covered_by(self, purchase: PurchaseRecord) -> bool:
        """Whether ``purchase`` is what this claim reviewed (the order itself, or a product in it)."""
        if purchase.customer_id != self.customer_id:
            return False
        return purchase.order_id == self.order_id if self.order_id else self.product_id in purchase.skus


@dataclass(frozen=True)
class Applied:
    """A single ledger write (a redemption, an expiry) as it stands after the write."""

    entry: LedgerEntry
    balance: int
    created: bool
    #: The customer's tier as the write saw it (announcements carry it; no second read).
    tier: str | None = None
