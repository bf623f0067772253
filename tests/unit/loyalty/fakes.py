"""An in-memory store behind loyalty's ``LoyaltyStore`` interface, with the same rules as MongoDB's:
entry ids and (source event, rule) are unique, and a ledger write moves the balance with it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from loyalty.points import EARNING_RULES, ORDER_RULES
from loyalty.repository import Applied, CustomerState, InsufficientBalance, LedgerEntry


class FakeStore:
    def __init__(self) -> None:
        self.ledger: dict[str, LedgerEntry] = {}
        self.keys: set[tuple[str, str]] = set()
        self.purchases: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.profiles: dict[str, dict[str, Any]] = {}
        self.erasures: dict[str, datetime] = {}

    def record_purchase(self, order_id: str, customer_id: str, *, amount: Decimal, currency: str, at: datetime,
                        event_id: str) -> tuple[int, Decimal]:
        if order_id not in self.purchases:
            ordinal = sum(1 for p in self.purchases.values() if p["customer_id"] == customer_id) + 1
            self.purchases[order_id] = {"customer_id": customer_id, "ordinal": ordinal, "amount": amount}
        return int(self.purchases[order_id]["ordinal"]), self.purchases[order_id]["amount"]

    def apply(self, entry: LedgerEntry, *, clamp_to_balance: bool = False, require_balance: bool = False) -> Applied:
        customer = self.customers.setdefault(entry.customer_id, {"balance": 0})
        if entry.entry_id in self.ledger:
            return Applied(self.ledger[entry.entry_id], customer["balance"], created=False, tier=customer.get("tier"))
        if (entry.source_event_id, entry.rule) in self.keys:
            raise AssertionError("unique key violated without the same entry id")
        points = entry.points
        if points < 0 and clamp_to_balance:
            points = -min(-points, max(customer["balance"], 0))
        if points < 0 and require_balance and customer["balance"] + points < 0:
            raise InsufficientBalance(customer["balance"], -points)
        final = replace(entry, points=points)
        self.ledger[final.entry_id] = final
        self.keys.add((final.source_event_id, final.rule))
        customer["balance"] += points
        customer["last_activity_at"] = max(customer.get("last_activity_at") or final.at, final.at)
        if final.rule == "surprise_bonus":
            customer["last_surprise_at"] = final.at
        return Applied(final, customer["balance"], created=True, tier=customer.get("tier"))

    def order_points(self, order_id: str) -> int:
        return sum(e.points for e in self.ledger.values() if e.order_id == order_id and e.rule in ORDER_RULES)

    def customer(self, customer_id: str) -> CustomerState:
        c = self.customers.get(customer_id, {})
        return CustomerState(customer_id, c.get("balance", 0), c.get("tier"), c.get("last_activity_at"),
                             c.get("last_surprise_at"))

    def set_tier(self, customer_id: str, tier: str, cause_id: str) -> tuple[str | None, bool]:
        c = self.customers.setdefault(customer_id, {"balance": 0})
        if c.get("tier") == tier:
            return c.get("tier_previous"), c.get("tier_cause") == cause_id
        previous = c.get("tier")
        c.update(tier=tier, tier_previous=previous, tier_cause=cause_id)
        return previous, True

    def earned_since(self, customer_id: str, since: datetime) -> int:
        return sum(e.points for e in self.ledger.values() if e.customer_id == customer_id and e.at >= since
                   and (e.rule in EARNING_RULES or e.rule == "return_reversal"))

    def profile(self, customer_id: str) -> dict[str, Any] | None:
        return self.profiles.get(customer_id)

    def put_profile(self, customer_id: str, profile: dict[str, Any]) -> None:
        self.profiles[customer_id] = profile

    def inactive_since(self, before: datetime, limit: int = 500) -> list[CustomerState]:
        return [self.customer(cid) for cid, c in self.customers.items()
                if c.get("balance", 0) > 0 and c.get("last_activity_at") and c["last_activity_at"] < before][:limit]

    def erased_at(self, customer_id: str) -> datetime | None:
        return self.erasures.get(customer_id)

    def ledger_sum(self, customer_id: str) -> int:
        return sum(e.points for e in self.ledger.values() if e.customer_id == customer_id)
