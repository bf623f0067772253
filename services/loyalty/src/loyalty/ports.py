"""What loyalty's service needs of its stores, one Protocol per aggregate (accounts, purchases, the ledger)
and one for the transaction that writes a batch across them. The MongoDB implementations are in
``loyalty.stores``; the unit tests' in-memory fakes implement the same Protocols."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from loyalty.decide import AccountChange
from loyalty.domain import Account, Applied, LedgerEntry, Profile, PurchaseRecord, ReviewClaim


@dataclass
class PurchasesSeen:
    """Purchases on record for a batch: by order id, counted per buyer, the (customer, product) pairs its
    product reviews ask about, and the buyers' reviews waiting for a purchase."""

    records: dict[str, PurchaseRecord] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    products_bought: set[tuple[str, str]] = field(default_factory=set)
    claims: list[ReviewClaim] = field(default_factory=list)


@dataclass
class LedgerSeen:
    """Entries on the ledger for a batch (by entry id), and tier points earned per customer in their window."""

    entries: dict[str, LedgerEntry] = field(default_factory=dict)
    earned: dict[str, int] = field(default_factory=dict)


class AccountStore(Protocol):
    def accounts_by_id(self, customer_ids: Iterable[str]) -> dict[str, Account]:
        """Accounts, profiles and erasure marks of ``customer_ids`` (absent: nothing on record)."""
        ...

    def account(self, customer_id: str) -> Account: ...
    def put_profile(self, customer_id: str, profile: Profile) -> None: ...
    def inactive_since(self, before: datetime, limit: int = 500) -> list[Account]: ...


class PurchaseStore(Protocol):
    def seen(self, order_ids: Iterable[str], buyers: Iterable[str],
             products: Iterable[tuple[str, str]]) -> PurchasesSeen: ...
    def figures(self) -> dict[str, dict[str, Decimal]]: ...


class LedgerStore(Protocol):
    def seen(self, source_event_ids: Iterable[str], returned_orders: Iterable[str],
             windows: Mapping[str, datetime]) -> LedgerSeen: ...
    def earned_since(self, customer_id: str, since: datetime) -> int: ...
    def entries(self, customer_id: str, *, limit: int = 50, offset: int = 0) -> list[LedgerEntry]: ...
    def count_entries(self, customer_id: str) -> int: ...


class LoyaltyStore(Protocol):
    """The three aggregates, and the writes that must move them together."""

    @property
    def accounts(self) -> AccountStore: ...
    @property
    def purchases(self) -> PurchaseStore: ...
    @property
    def ledger(self) -> LedgerStore: ...

    def write(self, purchases: Sequence[PurchaseRecord], entries: Sequence[LedgerEntry],
              accounts: Sequence[AccountChange], *, claims: Sequence[ReviewClaim] = (),
              claims_paid: Sequence[str] = ()) -> None:
        """All or nothing, in one transaction: record the purchases, append the entries, move each account
        by its change (``$inc`` of the sum of its new entries), conditional on the balance it was decided
        on; keep the new review claims (once each), drop the paid ones. Raises ``WriteConflict`` (nothing written) when any of it was written, or the balance moved,
        since the state was loaded."""
        ...

    def apply(self, entry: LedgerEntry, *, clamp_to_balance: bool = False,
              require_balance: bool = False) -> Applied:
        """One entry and its balance, in one transaction (redemptions, expiry). An entry already on the
        ledger is returned unchanged with ``created=False``."""
        ...

    def anonymise_customer(self, customer_id: str, pseudonym: str, requested_at: datetime) -> int: ...
