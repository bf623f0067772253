"""What the loyalty service does with each event: apply the rules once, announce what changed."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from feedback_shared.errors import Conflict
from feedback_shared.events import (
    CustomerProfileUpdated,
    CustomerThanked,
    Event,
    FeedbackScored,
    FollowUpDue,
    OrderReturned,
    PointsAwarded,
    PointsReversed,
    PurchaseRecorded,
    TierChanged,
    derived_id,
    erased_with,
    utcnow,
)
from loyalty.metrics import LoyaltyMetrics
from loyalty.points import (
    Credit,
    PointsRules,
    expiry,
    purchase_credits,
    return_reversal,
    salutation,
    surprise_bonus,
    thank_you_message,
    tier_for,
)
from loyalty.repository import Applied, LedgerEntry, LoyaltyStore

logger = logging.getLogger(__name__)


def pseudonym(customer_id: str) -> str:
    """A stable stand-in for an erased customer: the same erasure twice gives the same pseudonym."""
    return "erased-" + hashlib.sha256(f"loyalty-erasure|{customer_id}".encode()).hexdigest()[:24]


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
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self.clock = clock

    # ---- events in -------------------------------------------------------------------------------
    def _erased_before(self, customer_id: str, event: PurchaseRecorded | OrderReturned | FeedbackScored) -> bool:
        """Whether the event was taken in before its customer's erasure request and arrived after the
        erasure was applied (erasure has its own topic, so nothing orders the two)."""
        late = bool(customer_id) and erased_with(event.ingested_at, self.store.erased_at(customer_id))
        if late:
            self.metrics.erased_late.labels(type=event.event_type).inc()
            logger.info("erased_customer_event_late event_id=%s type=%s", event.event_id, event.event_type)
        return late

    def on_commerce(self, event: PurchaseRecorded | OrderReturned) -> Effects:
        """Credits are keyed on the business id (the order), not the event id: a sender that retries
        with a new event id still credits once.

        An event from before its customer's erasure that arrives after it is applied under the
        pseudonym, as the erasure did to what was already here (amounts stay for audit), and announces
        nothing: no points event and no message to a customer who asked to be forgotten."""
        self.metrics.handled.labels(type=event.event_type).inc()
        if self._erased_before(event.customer_id, event):
            self._commerce(event.model_copy(update={"customer_id": pseudonym(event.customer_id)}))
            return Effects()
        return self._commerce(event)

    def _commerce(self, event: PurchaseRecorded | OrderReturned) -> Effects:
        effects = Effects()
        if isinstance(event, PurchaseRecorded):
            business_id = str(derived_id("purchase", event.order_id))
            ordinal, amount = self.store.record_purchase(
                event.order_id, event.customer_id, amount=event.amount, currency=event.currency,
                at=event.occurred_at, event_id=str(event.event_id))
            self.metrics.purchases.labels(kind="first" if ordinal == 1 else "repeat").inc()
            credits = purchase_credits(ordinal, amount, self.rules)
            for credit in credits:
                self._credit(event, event.customer_id, credit, effects, order_id=event.order_id,
                             source_event_id=business_id)
            if ordinal > 1:
                state = self.store.customer(event.customer_id)
                bonus = surprise_bonus(business_id, at=event.occurred_at,
                                       last_surprise_at=state.last_surprise_at, rules=self.rules)
                if bonus is not None:
                    self._credit(event, event.customer_id, bonus, effects, order_id=None, surprise=True,
                                 source_event_id=business_id)
            effects.notifications.append(FollowUpDue(
                event_id=derived_id("followup", business_id), trace_id=event.trace_id,
                customer_id=event.customer_id, reason="post_purchase_confirmation", order_id=event.order_id,
                due_at=event.occurred_at + timedelta(hours=self.rules.followup_hours),
            ))
        else:
            balance = self.store.customer(event.customer_id).balance
            reversal = return_reversal(self.store.order_points(event.order_id), balance, self.rules)
            self._credit(event, event.customer_id, reversal, effects, order_id=event.order_id, clamp=True,
                         source_event_id=str(derived_id("return", event.order_id)))
        self._check_tier(event, event.customer_id, effects)
        return effects

    def on_scored(self, scored: FeedbackScored) -> Effects:
        """A review bonus, once per customer and order (or product), whatever the review says."""
        effects = Effects()
        self.metrics.handled.labels(type=scored.event_type).inc()
        subject = scored.order_id or scored.product_id
        if not scored.customer_id or not subject or self.rules.review_bonus <= 0:
            return effects
        if self._erased_before(scored.customer_id, scored):
            # Not under the pseudonym: the bonus is keyed on the customer, so one the erasure already
            # moved to the pseudonym would be credited a second time.
            return effects
        source = derived_id("review-bonus", scored.customer_id, subject)
        self._credit(scored, scored.customer_id, Credit("review_bonus", self.rules.review_bonus), effects,
                     order_id=scored.order_id, source_event_id=str(source))
        self._check_tier(scored, scored.customer_id, effects)
        return effects

    def on_profile(self, profile: CustomerProfileUpdated) -> None:
        self.store.put_profile(profile.customer_id, profile.model_dump(
            mode="json", include={"preferred_name", "first_name_permitted", "language", "preferred_channel"}))

    # ---- requests --------------------------------------------------------------------------------
    def redeem(self, customer_id: str, points: int, reward: str, idempotency_key: str) -> tuple[Redemption, Effects]:
        """Take ``points`` off the balance for a reward; the same key again returns the first result.

        Raises:
            InsufficientBalance: the balance is lower than ``points`` (nothing was written).
        """
        source = str(derived_id("redeem", customer_id, idempotency_key))
        entry = LedgerEntry(entry_id=str(derived_id("ledger", source, "redeem")), customer_id=customer_id,
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
        for state in self.store.inactive_since(cutoff):
            if state.last_activity_at is None:
                continue
            credit = expiry(state.balance, state.last_activity_at, now, self.rules)
            if credit is None:
                continue
            source = str(derived_id("expiry", state.customer_id, state.last_activity_at.isoformat()))
            entry = LedgerEntry(entry_id=str(derived_id("ledger", source, credit.rule)),
                                customer_id=state.customer_id, source_event_id=source, rule=credit.rule,
                                points=credit.points, at=now)
            applied = self.store.apply(entry, clamp_to_balance=True)
            if applied.created:
                self.metrics.points.labels(rule=credit.rule).inc(abs(applied.entry.points))
            effects.points.append(self._announce(applied, trace_id=source))
        return effects

    # ---- internals -------------------------------------------------------------------------------
    def _credit(self, cause: Event, customer_id: str, credit: Credit, effects: Effects, *,
                order_id: str | None, surprise: bool = False, clamp: bool = False,
                source_event_id: str | None = None) -> Applied:
        source = source_event_id or str(cause.event_id)
        entry = LedgerEntry(
            entry_id=str(derived_id("ledger", source, credit.rule)), customer_id=customer_id,
            source_event_id=source, rule=credit.rule, points=credit.points, at=cause.occurred_at,
            order_id=order_id,
        )
        applied = self.store.apply(entry, clamp_to_balance=clamp)
        if applied.created:
            self.metrics.points.labels(rule=credit.rule).inc(abs(applied.entry.points))
            logger.info("ledger_entry entry_id=%s event_id=%s rule=%s points=%d", entry.entry_id, cause.event_id,
                        credit.rule, applied.entry.points)
        if applied.entry.points != 0:
            effects.points.append(self._announce(applied, trace_id=cause.trace_id, surprise=surprise))
        if applied.entry.points > 0:
            profile = self.store.profile(customer_id) or {}
            name = salutation(profile.get("preferred_name"))
            message = thank_you_message(credit.rule, applied.entry.points, name)
            if message:
                effects.notifications.append(CustomerThanked(
                    event_id=derived_id("thanks", applied.entry.entry_id), trace_id=cause.trace_id,
                    customer_id=customer_id, addressed_to=name, message=message, reason=credit.rule,
                    points=applied.entry.points, language=profile.get("language"),
                ))
        return applied

    def _announce(self, applied: Applied, *, trace_id: str, surprise: bool = False) -> Event:
        entry = applied.entry
        model = PointsAwarded if entry.points >= 0 else PointsReversed
        return model(
            event_id=derived_id("points-event", entry.entry_id), trace_id=trace_id, occurred_at=entry.at,
            customer_id=entry.customer_id, entry_id=entry.entry_id, rule=entry.rule, points=entry.points,
            source_event_id=uuid.UUID(entry.source_event_id), balance=applied.balance,
            tier=applied.tier or tier_for(0, self.rules),
            order_id=entry.order_id, surprise=surprise,
        )

    def _check_tier(self, cause: Event, customer_id: str, effects: Effects) -> None:
        since = cause.occurred_at - timedelta(days=self.rules.tier_window_days)
        earned = self.store.earned_since(customer_id, since)
        tier = tier_for(earned, self.rules)
        previous, changed = self.store.set_tier(customer_id, tier, str(cause.event_id))
        joined_at_the_bottom = previous is None and tier == tier_for(0, self.rules)
        if changed and not joined_at_the_bottom:
            # ingested_at is the cause's: when the item behind the change was taken in, which is what an
            # erasure is compared with downstream (alerts keeps no tier from before one).
            effects.points.append(TierChanged(
                event_id=derived_id("tier", customer_id, cause.event_id, tier), trace_id=cause.trace_id,
                customer_id=customer_id, previous_tier=previous, tier=tier, points_earned=earned,
                ingested_at=cause.ingested_at,
            ))


class IdempotencyConflict(Conflict):
    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used for a different redemption")


