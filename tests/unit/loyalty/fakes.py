"""In-memory stores behind loyalty's Protocols (``loyalty.ports``), with the same rules as MongoDB's: entry
ids and (source event, rule) are unique, a batch's writes land all together or not at all, and an account
moves only from the balance it was decided on. Each counts its calls, as the database counts round trips."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from loyalty.decide import AccountChange
from loyalty.domain import (
    Account,
    Applied,
    InsufficientBalance,
    LedgerEntry,
    Profile,
    PurchaseRecord,
    ReviewClaim,
    WriteConflict,
)
from loyalty.points import ORDER_RULES, TIER_RULES
from loyalty.ports import LedgerSeen, PurchasesSeen


class Calls:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def _call(self, name: str) -> None:
        self.calls[name] += 1


class FakeAccounts(Calls):
    def __init__(self) -> None:
        super().__init__()
        self.customers: dict[str, dict[str, Any]] = {}
        self.profiles: dict[str, Profile] = {}
        self.erasures: dict[str, datetime] = {}

    def _account(self, customer_id: str) -> Account:
        doc = self.customers.get(customer_id)
        d = doc or {}
        return Account(customer_id, balance=d.get("balance", 0), tier=d.get("tier"),
                       tier_previous=d.get("tier_previous"), tier_cause=d.get("tier_cause"),
                       last_activity_at=d.get("last_activity_at"), last_surprise_at=d.get("last_surprise_at"),
                       profile=self.profiles.get(customer_id), erased_at=self.erasures.get(customer_id),
                       stored_balance=d.get("balance"), stored_revision=d.get("revision"),
                       exists=doc is not None)

    def accounts_by_id(self, customer_ids: Iterable[str]) -> dict[str, Account]:
        self._call("accounts_by_id")
        return {c: self._account(c) for c in set(customer_ids)
                if c in self.customers or c in self.profiles or c in self.erasures}

    def account(self, customer_id: str) -> Account:
        self._call("account")
        return self._account(customer_id)

    def put_profile(self, customer_id: str, profile: Profile) -> None:
        self._call("put_profile")
        self.profiles[customer_id] = profile

    def inactive_since(self, before: datetime, limit: int = 500) -> list[Account]:
        self._call("inactive_since")
        return [self._account(c) for c, d in self.customers.items()
                if d.get("balance", 0) > 0 and d.get("last_activity_at") and d["last_activity_at"] < before][:limit]


class FakePurchases(Calls):
    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, PurchaseRecord] = {}
        self.claims: dict[str, ReviewClaim] = {}

    def seen(self, order_ids: Iterable[str], buyers: Iterable[str],
             products: Iterable[tuple[str, str]]) -> PurchasesSeen:
        self._call("seen")
        buyers, pairs = set(buyers), set(products)
        return PurchasesSeen(
            records={o: self.records[o] for o in order_ids if o in self.records},
            counts=dict(Counter(r.customer_id for r in self.records.values() if r.customer_id in buyers)),
            products_bought={(r.customer_id, s) for r in self.records.values() for s in r.skus} & pairs,
            claims=[c for c in self.claims.values() if c.customer_id in buyers],
        )

    def figures(self) -> dict[str, dict[str, Decimal]]:
        self._call("figures")
        return {}


class FakeLedger(Calls):
    def __init__(self) -> None:
        super().__init__()
        self.entries_by_id: dict[str, LedgerEntry] = {}

    def seen(self, source_event_ids: Iterable[str], returned_orders: Iterable[str],
             windows: Mapping[str, datetime]) -> LedgerSeen:
        self._call("seen")
        sources, orders = set(source_event_ids), set(returned_orders)
        entries = {e.entry_id: e for e in self.entries_by_id.values()
                   if e.source_event_id in sources or (e.order_id in orders and e.rule in ORDER_RULES)}
        earned = {c: self._earned(c, since) for c, since in windows.items()}
        return LedgerSeen(entries, {c: points for c, points in earned.items() if points})

    def _earned(self, customer_id: str, since: datetime) -> int:
        return sum(e.points for e in self.entries_by_id.values()
                   if e.customer_id == customer_id and e.at >= since and e.rule in TIER_RULES)

    def earned_since(self, customer_id: str, since: datetime) -> int:
        self._call("earned_since")
        return self._earned(customer_id, since)

    def entries(self, customer_id: str, *, limit: int = 50, offset: int = 0) -> list[LedgerEntry]:
        self._call("entries")
        mine = sorted((e for e in self.entries_by_id.values() if e.customer_id == customer_id),
                      key=lambda e: e.at, reverse=True)
        return mine[offset:offset + limit]

    def count_entries(self, customer_id: str) -> int:
        self._call("count_entries")
        return sum(1 for e in self.entries_by_id.values() if e.customer_id == customer_id)

    def ledger_sum(self, customer_id: str) -> int:
        return sum(e.points for e in self.entries_by_id.values() if e.customer_id == customer_id)


class FakeLoyaltyStore(Calls):
    def __init__(self) -> None:
        super().__init__()
        self.accounts = FakeAccounts()
        self.purchases = FakePurchases()
        self.ledger = FakeLedger()
        #: Runs inside ``write`` before anything is checked: a test's concurrent writer.
        self.before_write: list[Any] = []

    def total_calls(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for name, store in (("store", self), ("accounts", self.accounts), ("purchases", self.purchases),
                            ("ledger", self.ledger)):
            total.update({f"{name}.{k}": v for k, v in store.calls.items()})
        return total

    def write(self, purchases: Sequence[PurchaseRecord], entries: Sequence[LedgerEntry],
              accounts: Sequence[AccountChange], *, claims: Sequence[ReviewClaim] = (),
              claims_paid: Sequence[str] = ()) -> None:
        if not (purchases or entries or accounts or claims or claims_paid):
            return
        self._call("write")
        while self.before_write:
            self.before_write.pop(0)()
        keys = {(e.source_event_id, e.rule) for e in self.ledger.entries_by_id.values()}
        # Checked before anything is applied: a transaction aborts whole.
        if any(p.order_id in self.purchases.records for p in purchases):
            raise WriteConflict("purchase recorded since")
        if any(e.entry_id in self.ledger.entries_by_id or (e.source_event_id, e.rule) in keys for e in entries):
            raise WriteConflict("ledger entry written since")
        customers = self.accounts.customers
        if any(customers.get(c.customer_id, {}).get("balance") != c.account.stored_balance
               or customers.get(c.customer_id, {}).get("revision") != c.account.stored_revision for c in accounts):
            raise WriteConflict("account written since")
        for p in purchases:
            self.purchases.records[p.order_id] = p
        for e in entries:
            self.ledger.entries_by_id[e.entry_id] = e
        for change in accounts:
            doc = customers.setdefault(change.customer_id, {})
            doc["balance"] = doc.get("balance", 0) + change.points
            doc["revision"] = doc.get("revision", 0) + 1
            for key in ("last_activity_at", "last_surprise_at"):
                value = getattr(change, key)
                if value is not None:
                    doc[key] = max(doc.get(key) or value, value)
            if change.tier is not None:
                doc.update(tier=change.tier, tier_previous=change.tier_previous, tier_cause=change.tier_cause)
        for claim in claims:
            self.purchases.claims.setdefault(claim.source_event_id, claim)
        for source in claims_paid:
            self.purchases.claims.pop(source, None)

    def apply(self, entry: LedgerEntry, *, clamp_to_balance: bool = False, require_balance: bool = False) -> Applied:
        self._call("apply")
        customer = self.accounts.customers.setdefault(entry.customer_id, {"balance": 0})
        if entry.entry_id in self.ledger.entries_by_id:
            return Applied(self.ledger.entries_by_id[entry.entry_id], customer["balance"], created=False,
                           tier=customer.get("tier"))
        balance = customer.get("balance", 0)
        points = entry.points
        if points < 0 and clamp_to_balance:
            points = -min(-points, max(balance, 0))
        if points < 0 and require_balance and balance + points < 0:
            raise InsufficientBalance(balance, -points)
        final = replace(entry, points=points)
        self.ledger.entries_by_id[final.entry_id] = final
        customer["balance"] = balance + points
        customer["revision"] = customer.get("revision", 0) + 1
        customer["last_activity_at"] = max(customer.get("last_activity_at") or final.at, final.at)
        return Applied(final, customer["balance"], created=True, tier=customer.get("tier"))

    def anonymise_customer(self, customer_id: str, pseudonym: str, requested_at: datetime) -> int:
        self._call("anonymise_customer")
        self.accounts.erasures[customer_id] = requested_at
        moved = [e for e in self.ledger.entries_by_id.values() if e.customer_id == customer_id]
        for e in moved:
            self.ledger.entries_by_id[e.entry_id] = replace(e, customer_id=pseudonym)
        for o, r in list(self.purchases.records.items()):
            if r.customer_id == customer_id:
                self.purchases.records[o] = replace(r, customer_id=pseudonym)
        self.purchases.claims = {k: c for k, c in self.purchases.claims.items() if c.customer_id != customer_id}
        self.accounts.customers.pop(customer_id, None)
        self.accounts.profiles.pop(customer_id, None)
        return len(moved)

    # ---- for assertions ----------------------------------------------------------------------------
    def balance(self, customer_id: str) -> int:
        return int(self.accounts.customers.get(customer_id, {}).get("balance", 0))

    def ledger_sum(self, customer_id: str) -> int:
        return self.ledger.ledger_sum(customer_id)
