"""Loyalty's service layer: a batch of purchases, returns or scored items → load the state it touches →
decide → write → effects.

The stream calls ``handle_batch`` with a whole agent batch: three bulk reads (accounts with their profiles
and erasure marks; purchases; the ledger), the pure ``decide``, then one transaction for the purchases,
the ledger entries and the balances. Announcements are returned for the caller to publish once the
transaction is durable.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from feedback_shared.errors import Conflict
from feedback_shared.events import (
    CustomerProfileUpdated,
    Event,
    FeedbackScored,
    OrderReturned,
    PointsAwarded,
    PointsReversed,
    PurchaseRecorded,
    derived_id,
    utcnow,
)
from loyalty.decide import (
    DEV_KEY,
    BatchItem,
    BatchState,
    Decisions,
    customers_of,
    decide,
    dropped,
    entry_id,
    items_of,
    pseudonym,
    window_starts,
)
from loyalty.domain import Applied, LedgerEntry, Profile, WriteConflict
from loyalty.metrics import LoyaltyMetrics
from loyalty.points import PointsRules, expiry, tier_for
from loyalty.ports import LoyaltyStore

logger = logging.getLogger(__name__)

__all__ = ["Effects", "IdempotencyConflict", "LoyaltyService", "Redemption", "pseudonym"]

#: A batch that meets a concurrent write is loaded and decided again, this many times at most; then the
#: error goes to the stream's retry and dead-letter policy.
ATTEMPTS = 3


@dataclass
class Effects:
    """Events to publish after the ledger writes are durable."""

    points: list[Event] = field(default_factory=list)
    notifications: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class Redemption:
    entry: LedgerEntry
    balance: int
    created: bool


class LoyaltyService:
    def __init__(self, store: LoyaltyStore, rules: PointsRules, metrics: LoyaltyMetrics,
                 clock: Callable[[], datetime] = utcnow, pseudonym_key: bytes = DEV_KEY) -> None:
        self.pseudonym_key = pseudonym_key
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self.clock = clock

    # ---- events in -------------------------------------------------------------------------------
    def handle_batch(self, batch: Sequence[BatchItem]) -> Effects:
        """Apply the rules to a batch (purchases, returns, scored items; in partition order) exactly once.

        Credits are keyed on the business id (the order; the customer and what they reviewed), not the
        event id: a sender that retries with a new event id still credits once."""
        for event in batch:
            self.metrics.handled.labels(type=event.event_type).inc()
        for attempt in range(1, ATTEMPTS + 1):
            state = self.load(batch)
            decisions = decide(batch, state, self.rules, self.clock(), self.pseudonym_key)
            try:
                self.store.write(decisions.purchases, decisions.entries, decisions.accounts,
                                 claims=decisions.claims, claims_paid=decisions.claims_paid)
            except WriteConflict:
                if attempt == ATTEMPTS:
                    raise
                logger.info("loyalty_batch_conflict", extra={"attempt": attempt, "size": len(batch)})
                continue
            return self._effects(decisions)
        raise AssertionError("unreachable")  # pragma: no cover

    def on_commerce(self, event: PurchaseRecorded | OrderReturned) -> Effects:
        return self.handle_batch([event])

    def on_scored(self, scored: FeedbackScored) -> Effects:
        return self.handle_batch([scored])

    def on_profile(self, profile: CustomerProfileUpdated) -> None:
        self.store.accounts.put_profile(profile.customer_id, Profile(profile.preferred_name, profile.language))

    # ---- load ------------------------------------------------------------------------------------
    def load(self, batch: Sequence[BatchItem]) -> BatchState:
        """The state ``batch`` touches, in one read per aggregate (none for a batch that moves no points)."""
        customers = customers_of(batch, self.rules)
        if not customers:
            return BatchState()
        # Pseudonyms too: an event from before its customer's erasure is applied under theirs.
        accounts = self.store.accounts.accounts_by_id(customers | {pseudonym(c, self.pseudonym_key) for c in customers})
        items = [i for i in items_of(batch, accounts, self.rules, self.pseudonym_key) if not dropped(i)]
        buyers = {i.customer_id for i in items if isinstance(i.event, PurchaseRecorded)}
        orders = {i.event.order_id for i in items if i.event.order_id}
        products = {(i.customer_id, i.event.product_id) for i in items
                    if isinstance(i.event, FeedbackScored) and not i.event.order_id and i.event.product_id}
        purchases = self.store.purchases.seen(orders, buyers, products)
        returned = {i.event.order_id for i in items if isinstance(i.event, OrderReturned)}
        sources = {i.source_event_id for i in items} | {c.source_event_id for c in purchases.claims}
        ledger = self.store.ledger.seen(sources, returned, window_starts(items, self.rules))
        return BatchState(accounts=accounts, purchases=purchases.records, purchase_counts=purchases.counts,
                          products_bought=purchases.products_bought, claims=purchases.claims,
                          ledger=ledger.entries, earned=ledger.earned)

    # ---- effects ---------------------------------------------------------------------------------
    def _effects(self, decisions: Decisions) -> Effects:
        for record in decisions.purchases:
            self.metrics.purchases.labels(kind="first" if record.ordinal == 1 else "repeat").inc()
        for entry in decisions.entries:
            self.metrics.points.labels(rule=entry.rule).inc(abs(entry.points))
            logger.info("ledger_entry", extra={"entry_id": entry.entry_id, "event_id": entry.source_event_id,
                                               "rule": entry.rule, "points": entry.points})
        for event in decisions.erased_late:
            self.metrics.erased_late.labels(type=event.event_type).inc()
            logger.info("erased_customer_event_late", extra={"event_id": str(event.event_id), "type": event.event_type})
        for scored in decisions.not_bought:
            logger.info("review_bonus_waits_for_purchase", extra={
                "event_id": str(scored.event_id), "order_id": scored.order_id, "product_id": scored.product_id})
        return Effects(points=decisions.points, notifications=decisions.notifications)

    # ---- requests --------------------------------------------------------------------------------
    def redeem(self, customer_id: str, points: int, reward: str, idempotency_key: str) -> tuple[Redemption, Effects]:
        """Take ``points`` off the balance for a reward; the same key again returns the first result.

        Raises:
            InsufficientBalance: the balance is lower than ``points`` (nothing was written).
        """
        source = str(derived_id("redeem", customer_id, idempotency_key))
        entry = LedgerEntry(entry_id=entry_id(source, "redeem"), customer_id=customer_id,
                            source_event_id=source, rule="redeem", points=-points, at=self.clock(),
                            details={"reward": reward, "idempotency_key": idempotency_key})
        applied = self.store.apply(entry, require_balance=True)
        if not applied.created and (applied.entry.points != -points or applied.entry.details.get("reward") != reward):
            raise IdempotencyConflict(idempotency_key)
        effects = Effects()
        effects.points.append(self._announce(applied, trace_id=source))
        return Redemption(applied.entry, applied.balance, applied.created), effects

    def expire_inactive(self) -> Effects:
        """Expire balances of customers inactive longer than the rules allow (if the rules say so)."""
        effects = Effects()
        if self.rules.expiry_inactive_days is None:
            return effects
        now = self.clock()
        cutoff = now - timedelta(days=self.rules.expiry_inactive_days)
        for account in self.store.accounts.inactive_since(cutoff):
            if account.last_activity_at is None:
                continue
            credit = expiry(account.balance, account.last_activity_at, now, self.rules)
            if credit is None:
                continue
            source = str(derived_id("expiry", account.customer_id, account.last_activity_at.isoformat()))
            entry = LedgerEntry(entry_id=entry_id(source, credit.rule), customer_id=account.customer_id,
                                source_event_id=source, rule=credit.rule, points=credit.points, at=now)
            applied = self.store.apply(entry, clamp_to_balance=True)
            if applied.created:
                self.metrics.points.labels(rule=credit.rule).inc(abs(applied.entry.points))
            effects.points.append(self._announce(applied, trace_id=source))
        return effects

    def anonymise_customer(self, customer_id: str, requested_at: datetime) -> int:
        return self.store.anonymise_customer(customer_id, pseudonym(customer_id, self.pseudonym_key), requested_at)

    def _announce(self, applied: Applied, *, trace_id: str) -> Event:
        entry = applied.entry
        model = PointsAwarded if entry.points >= 0 else PointsReversed
        return model(
            event_id=derived_id("points-event", entry.entry_id), trace_id=trace_id, occurred_at=entry.at,
            customer_id=entry.customer_id, entry_id=entry.entry_id, rule=entry.rule, points=entry.points,
            source_event_id=uuid.UUID(entry.source_event_id), balance=applied.balance,
            tier=applied.tier or tier_for(0, self.rules), order_id=entry.order_id,
        )


class IdempotencyConflict(Conflict):
    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used for a different redemption")
