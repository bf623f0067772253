"""Loyalty's core: a batch of purchases, returns and scored items and the state they touch in, decisions
out. Pure: no I/O.

``LoyaltyService`` loads a ``BatchState`` for a whole agent batch in a few bulk reads, calls ``decide``,
and writes the ``Decisions`` in one transaction. Every id in a decision is derived from the business
event it is for (a purchase or return from its order, a review bonus from the customer and what they
reviewed), and entries already on the ledger are loaded first, so deciding the same batch again after a
crash decides nothing new: a redelivery writes nothing twice and announces the same event ids again.

Items of one customer are folded in batch order: a return after its purchase in the same batch takes
back what that purchase earned, each credit sees the balance the ones before it left, and the tier is
computed once per customer, from where the batch leaves them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from feedback_shared.config import DEV_PSEUDONYM_KEY
from feedback_shared.events import (
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
)
from feedback_shared.pii import pseudonym as keyed_pseudonym
from loyalty.domain import Account, LedgerEntry, PurchaseRecord, ReviewClaim
from loyalty.points import (
    ORDER_RULES,
    TIER_RULES,
    PointsRules,
    purchase_credits,
    return_reversal,
    salutation,
    surprise_bonus,
    thank_you_message,
    tier_for,
)

BatchItem = PurchaseRecorded | OrderReturned | FeedbackScored


#: Development's pseudonym key (``LOYALTY_PSEUDONYM_KEY`` is required elsewhere).
DEV_KEY = DEV_PSEUDONYM_KEY.encode()


def pseudonym(customer_id: str, key: bytes = DEV_KEY) -> str:
    """A stable stand-in for an erased customer: the same erasure twice gives the same pseudonym. A
    keyed HMAC: without the key, knowing the customer's id does not find their anonymised ledger."""
    return keyed_pseudonym(key, f"loyalty-erasure|{customer_id}", prefix="erased-", length=24)


def entry_id(source_event_id: str, rule: str) -> str:
    return str(derived_id("ledger", source_event_id, rule))


# ---- what a batch is about (used to load its state, then to decide on it) -------------------------
@dataclass(frozen=True)
class Item:
    """One event of the batch, routed: whose points it moves and which business event it is."""

    event: BatchItem
    #: The customer's id, or their pseudonym for an event from before their erasure that came after it.
    customer_id: str
    #: The business id the ledger is keyed on: the purchase or return of the order, the review of a
    #: (customer, order or product). A sender retrying with a new event id is the same business event.
    source_event_id: str
    erased_late: bool = False


def customers_of(batch: Iterable[BatchItem], rules: PointsRules) -> set[str]:
    """The customers whose accounts (and erasure marks) deciding ``batch`` needs."""
    return {event.customer_id for event in batch if _counts(event, rules) and event.customer_id}


def _counts(event: BatchItem, rules: PointsRules) -> bool:
    """Whether an event can move points at all; a review needs a customer, something bought, and a bonus."""
    if isinstance(event, FeedbackScored):
        return bool(event.customer_id and (event.order_id or event.product_id) and rules.review_bonus > 0)
    return True


def items_of(batch: Iterable[BatchItem], accounts: dict[str, Account], rules: PointsRules,
             pseudonym_key: bytes = DEV_KEY) -> list[Item]:
    """The events that can move points, routed to the id their points go to.

    Erasure has its own topic, so nothing orders it with these: an event taken in before its customer's
    erasure can arrive after it. A purchase or return is then applied under the pseudonym, as the erasure
    did to what was already here (amounts stay for audit); a review bonus is dropped (it is keyed on the
    customer, so one the erasure already moved to the pseudonym would be credited a second time)."""
    items: list[Item] = []
    for event in batch:
        if not _counts(event, rules):
            continue
        customer_id = event.customer_id or ""
        account = accounts.get(customer_id)
        late = erased_with(event.ingested_at, account.erased_at if account else None)
        if isinstance(event, FeedbackScored):
            subject = event.order_id or event.product_id
            source = str(derived_id("review-bonus", customer_id, subject))
        else:
            kind = "purchase" if isinstance(event, PurchaseRecorded) else "return"
            source = str(derived_id(kind, event.order_id))
        items.append(Item(event, pseudonym(customer_id, pseudonym_key) if late else customer_id, source, late))
    return items


def window_starts(items: Iterable[Item], rules: PointsRules) -> dict[str, datetime]:
    """Per customer, where the tier's rolling window starts: the window before the customer's latest item
    in the batch, as the tier is computed once, from where the batch leaves them."""
    latest: dict[str, datetime] = {}
    for item in items:
        if not dropped(item):
            at = item.event.occurred_at
            latest[item.customer_id] = max(latest.get(item.customer_id, at), at)
    return {c: at - timedelta(days=rules.tier_window_days) for c, at in latest.items()}


def dropped(item: Item) -> bool:
    """A review bonus from before its customer's erasure: not paid at all."""
    return item.erased_late and isinstance(item.event, FeedbackScored)


# ---- state in, decisions out ----------------------------------------------------------------------
@dataclass
class BatchState:
    """What a batch touches, as loaded before deciding."""

    #: The batch's customers and their pseudonyms (missing: no account yet).
    accounts: dict[str, Account] = field(default_factory=dict)
    #: Purchases on record for the orders the batch buys, returns or reviews, by order id.
    purchases: dict[str, PurchaseRecord] = field(default_factory=dict)
    #: Purchases on record per buyer in the batch (the next purchase's ordinal is one more).
    purchase_counts: dict[str, int] = field(default_factory=dict)
    #: (customer, product) pairs on record, for reviews that name a product and no order.
    products_bought: set[tuple[str, str]] = field(default_factory=set)
    #: Reviews waiting for a purchase, of the batch's buyers.
    claims: list[ReviewClaim] = field(default_factory=list)
    #: Entries already on the ledger for the batch's business events, and every entry of the orders it
    #: returns that counts for the order (what a return takes back), by entry id.
    ledger: dict[str, LedgerEntry] = field(default_factory=dict)
    #: Per customer, tier points earned since their ``window_starts``.
    earned: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AccountChange:
    """How one account moves: the points of the entries written with it, and the tier if it changed."""

    account: Account
    points: int = 0
    last_activity_at: datetime | None = None
    last_surprise_at: datetime | None = None
    tier: str | None = None
    tier_previous: str | None = None
    tier_cause: str | None = None

    @property
    def customer_id(self) -> str:
        return self.account.customer_id


@dataclass
class Decisions:
    #: Purchases to record (not on record before the batch).
    purchases: list[PurchaseRecord] = field(default_factory=list)
    #: Ledger entries to write (not on the ledger before the batch).
    entries: list[LedgerEntry] = field(default_factory=list)
    #: One per customer the batch moves, with the sum of their new entries: written with them, atomically.
    accounts: list[AccountChange] = field(default_factory=list)
    #: For ``loyalty.points.v1`` and ``customer.notifications.v1``, after the writes are durable.
    points: list[Event] = field(default_factory=list)
    notifications: list[Event] = field(default_factory=list)
    #: Events from before their customer's erasure that came after it.
    erased_late: list[BatchItem] = field(default_factory=list)
    #: Reviews of an order or product loyalty has no purchase of by that customer: no bonus now; a claim
    #: each, paid if the purchase comes.
    not_bought: list[FeedbackScored] = field(default_factory=list)
    claims: list[ReviewClaim] = field(default_factory=list)
    #: Claims the batch's purchases paid (by source id): to delete with the writes.
    claims_paid: list[str] = field(default_factory=list)


@dataclass
class _Fold:
    """One customer's running state through the batch."""

    account: Account
    announce: bool
    balance: int = 0
    points: int = 0
    last_activity_at: datetime | None = None
    #: The latest surprise, before the batch or in it (at most one per ``surprise_min_days``).
    last_surprise_at: datetime | None = None
    new_entries: list[LedgerEntry] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    #: The batch files a review claim for this customer: the account is written even with no points, so
    #: that a purchase decided at the same moment (the other agent) conflicts with it (see ``Account``).
    claimed: bool = False


class _Decider:
    def __init__(self, state: BatchState, rules: PointsRules) -> None:
        self.state = state
        self.rules = rules
        self.out = Decisions()
        self.purchases = dict(state.purchases)
        self.counts = dict(state.purchase_counts)
        self.bought = set(state.products_bought)
        self.ledger = dict(state.ledger)
        self.folds: dict[str, _Fold] = {}

    def fold(self, item: Item) -> _Fold:
        fold = self.folds.get(item.customer_id)
        if fold is None:
            account = self.state.accounts.get(item.customer_id) or Account(item.customer_id)
            fold = _Fold(account, announce=not item.erased_late, balance=account.balance,
                         last_surprise_at=account.last_surprise_at)
            self.folds[item.customer_id] = fold
        return fold

    # ---- one item --------------------------------------------------------------------------------
    def purchase(self, item: Item, event: PurchaseRecorded, fold: _Fold) -> None:
        # The first record of the order stands: a resend with other details decides what the first did.
        record = self.purchases.get(event.order_id)
        if record is None:
            ordinal = self.counts.get(item.customer_id, 0) + 1
            self.counts[item.customer_id] = ordinal
            record = PurchaseRecord(
                order_id=event.order_id, customer_id=item.customer_id, ordinal=ordinal, amount=event.amount,
                currency=event.currency, at=event.occurred_at, event_id=str(event.event_id),
                skus=tuple(dict.fromkeys(line.sku for line in event.items or ())))
            self.purchases[event.order_id] = record
            self.bought.update((item.customer_id, sku) for sku in record.skus)
            self.out.purchases.append(record)
        for credit in purchase_credits(record.ordinal, record.amount, self.rules):
            self.credit(item, fold, credit.rule, credit.points, order_id=event.order_id)
        if record.ordinal > 1:
            if entry_id(item.source_event_id, "surprise_bonus") in self.ledger:
                self.credit(item, fold, "surprise_bonus", 0, order_id=None)  # on the ledger: announced again
            elif bonus := surprise_bonus(item.source_event_id, at=event.occurred_at,
                                         last_surprise_at=fold.last_surprise_at, rules=self.rules):
                self.credit(item, fold, bonus.rule, bonus.points, order_id=None)
        for claim in [*self.state.claims, *self.out.claims]:  # with the batch's own, made before this
            if claim.source_event_id not in self.out.claims_paid and claim.covered_by(record):
                self.out.claims_paid.append(claim.source_event_id)
                self.credit(item, fold, "review_bonus", self.rules.review_bonus, order_id=claim.order_id,
                            source=claim.source_event_id, at=claim.at, trace_id=claim.trace_id)
        if fold.announce:
            self.out.notifications.append(FollowUpDue(
                event_id=derived_id("followup", item.source_event_id), trace_id=event.trace_id,
                customer_id=item.customer_id, reason="post_purchase_confirmation", order_id=event.order_id,
                due_at=event.occurred_at + timedelta(hours=self.rules.followup_hours),
            ))

    def order_returned(self, item: Item, event: OrderReturned, fold: _Fold) -> None:
        points = 0
        if entry_id(item.source_event_id, "return_reversal") not in self.ledger:
            held = sum(e.points for e in self.ledger.values() if e.order_id == event.order_id
                       and e.rule in ORDER_RULES)
            points = return_reversal(held, fold.balance, self.rules).points
        self.credit(item, fold, "return_reversal", points, order_id=event.order_id)

    def review(self, item: Item, scored: FeedbackScored, fold: _Fold) -> bool:
        """The bonus is for reviewing something the customer bought (loyalty's own purchase record), once
        per order or product: anyone can send a review naming any order."""
        if scored.order_id:
            record = self.purchases.get(scored.order_id)
            bought = record is not None and record.customer_id == item.customer_id
        else:
            bought = (item.customer_id, scored.product_id or "") in self.bought
        if not bought:
            fold.claimed = True
            self.out.not_bought.append(scored)
            if item.source_event_id not in {c.source_event_id for c in self.out.claims}:
                self.out.claims.append(ReviewClaim(item.source_event_id, item.customer_id, scored.order_id,
                                                   None if scored.order_id else scored.product_id,
                                                   scored.occurred_at, scored.trace_id))
            return False
        self.credit(item, fold, "review_bonus", self.rules.review_bonus, order_id=scored.order_id)
        return True

    def credit(self, item: Item, fold: _Fold, rule: str, points: int, *, order_id: str | None,
               source: str | None = None, at: datetime | None = None, trace_id: str | None = None) -> None:
        """Write the entry unless it is on the ledger already (then it is announced again, as it was).
        ``source``, ``at``, ``trace_id``: the business event's, when it is not ``item`` (a claim)."""
        source = source or item.source_event_id
        trace_id = trace_id or item.event.trace_id
        key = entry_id(source, rule)
        entry = self.ledger.get(key)
        if entry is None:
            entry = LedgerEntry(entry_id=key, customer_id=item.customer_id, source_event_id=source,
                                rule=rule, points=points, at=at or item.event.occurred_at, order_id=order_id)
            self.ledger[key] = entry
            self.out.entries.append(entry)
            fold.new_entries.append(entry)
            fold.balance += entry.points
            fold.points += entry.points
            fold.last_activity_at = max(fold.last_activity_at or entry.at, entry.at)
            if rule == "surprise_bonus":
                fold.last_surprise_at = max(fold.last_surprise_at or entry.at, entry.at)
        if not fold.announce:
            return
        if entry.points != 0:
            model = PointsAwarded if entry.points >= 0 else PointsReversed
            self.out.points.append(model(
                event_id=derived_id("points-event", entry.entry_id), trace_id=trace_id, occurred_at=entry.at,
                customer_id=entry.customer_id, entry_id=entry.entry_id, rule=entry.rule, points=entry.points,
                source_event_id=uuid.UUID(entry.source_event_id), balance=fold.balance,
                tier=fold.account.tier or tier_for(0, self.rules), order_id=entry.order_id,
                surprise=entry.rule == "surprise_bonus",
            ))
        if entry.points > 0:
            profile = fold.account.profile
            name = salutation(profile.preferred_name if profile else None)
            message = thank_you_message(rule, entry.points, name)
            if message:
                self.out.notifications.append(CustomerThanked(
                    event_id=derived_id("thanks", entry.entry_id), trace_id=trace_id,
                    customer_id=entry.customer_id, addressed_to=name, message=message, reason=rule,
                    points=entry.points, language=profile.language if profile else None,
                ))

    # ---- once per customer -------------------------------------------------------------------------
    def settle(self, fold: _Fold, since: datetime) -> None:
        """The tier from where the batch leaves the customer, and the account's one change."""
        account = fold.account
        earned = self.state.earned.get(account.customer_id, 0) + sum(
            e.points for e in fold.new_entries if e.rule in TIER_RULES and e.at >= since)
        tier = tier_for(earned, self.rules)
        bottom = tier_for(0, self.rules)
        change = AccountChange(account, points=fold.points, last_activity_at=fold.last_activity_at,
                               last_surprise_at=max((e.at for e in fold.new_entries if e.rule == "surprise_bonus"),
                                                    default=None))
        cause: Item | None = None
        previous = account.tier
        if tier != account.tier:
            cause = fold.items[-1]
            change = replace(change, tier=tier, tier_previous=account.tier, tier_cause=str(cause.event.event_id))
        elif account.tier_cause:
            # The change was written by an earlier delivery of one of these items: announce it again
            # (same id), never lose it to a crash between the write and the publish.
            cause = next((i for i in fold.items if str(i.event.event_id) == account.tier_cause), None)
            previous = account.tier_previous
        if fold.new_entries or change.tier is not None or fold.claimed:
            self.out.accounts.append(change)
        joined_at_the_bottom = previous is None and tier == bottom
        if cause is not None and fold.announce and not joined_at_the_bottom:
            # ingested_at is the cause's: when the item behind the change was taken in, which is what an
            # erasure is compared with downstream (alerts keeps no tier from before one).
            self.out.points.append(TierChanged(
                event_id=derived_id("tier", account.customer_id, cause.event.event_id, tier),
                trace_id=cause.event.trace_id, customer_id=account.customer_id,
                # A new customer whose first batch already lifts them starts from the bottom tier.
                previous_tier=previous or bottom, tier=tier,
                points_earned=earned, ingested_at=cause.event.ingested_at,
            ))


def decide(batch: Sequence[BatchItem], state: BatchState, rules: PointsRules, now: datetime,
           pseudonym_key: bytes = DEV_KEY) -> Decisions:
    """What ``batch`` does to the ledger, the purchases and the accounts, and what to announce.

    ``now`` is not used by today's rules (every clock is the event's own); it is here so that a rule
    that needs it does not change the signature."""
    del now
    decider = _Decider(state, rules)
    items = items_of(batch, state.accounts, rules, pseudonym_key)
    for item in items:
        if item.erased_late:
            decider.out.erased_late.append(item.event)
        if dropped(item):
            continue
        fold = decider.fold(item)
        event = item.event
        if isinstance(event, PurchaseRecorded):
            decider.purchase(item, event, fold)
        elif isinstance(event, OrderReturned):
            decider.order_returned(item, event, fold)
        elif not decider.review(item, event, fold):
            continue
        fold.items.append(item)
    starts = window_starts(items, rules)
    for customer_id, fold in decider.folds.items():
        if fold.items:
            decider.settle(fold, starts[customer_id])
        elif fold.claimed:
            decider.out.accounts.append(AccountChange(fold.account))
    out = decider.out
    out.claims = [c for c in out.claims if c.source_event_id not in out.claims_paid]
    # One announcement per event id: the same purchase twice in a batch announces its entries once.
    out.points = list({e.event_id: e for e in out.points}.values())
    out.notifications = list({e.event_id: e for e in out.notifications}.values())
    return out
