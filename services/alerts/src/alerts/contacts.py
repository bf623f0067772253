"""Customer contact, the effects: decide (``alerts.customer_contact``), enqueue in the outbox, count; and
the sweep that sends what was scheduled for later once it is due.

At least once everywhere: a redelivered event, a second worker or a sweep repeated after a crash decides
the same delivery id again, and the outbox keeps the first. A scheduled contact is settled after its
delivery is enqueued, so a crash in between leaves it due, and the next sweep enqueues nothing new.
The clock is injected, so tests move time instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from alerts.customer_contact import (
    ContactOutcome,
    ContactTrigger,
    ScheduledContact,
    decide_contact,
    delay_notice_for,
    followup_for,
    is_late,
    on_status,
    on_thanked,
)
from alerts.domain import Case, Delivery
from alerts.metrics import AlertsMetrics
from alerts.stores import AlertsStore
from feedback_shared.events import CustomerThanked, FollowUpDue, utcnow
from feedback_shared.loops import every

logger = logging.getLogger(__name__)

Enqueue = Callable[[Sequence[Delivery], datetime], list[dict[str, Any]]]


class CustomerContacts:
    def __init__(self, store: AlertsStore, metrics: AlertsMetrics, enqueue: Enqueue, *, mailbox: str | None,
                 followup_lead: timedelta = timedelta(0), clock: Callable[[], datetime] = utcnow) -> None:
        """``enqueue``: puts deliveries in the outbox, returning those it added (``AlertService``'s, which
        hands them to this process's dispatcher). ``followup_lead``: how long before its due time a
        follow-up is swept, so that a sweep every few seconds sends it by then."""
        self.store = store
        self.metrics = metrics
        self.enqueue = enqueue
        self.mailbox = mailbox
        self.followup_lead = followup_lead
        self.clock = clock

    # ---- now -------------------------------------------------------------------------------------
    def contact(self, trigger: ContactTrigger, case: Case | None = None) -> ContactOutcome:
        """Decide and enqueue the message ``trigger`` sends now; what became of it (counted)."""
        now = self.clock()
        if case is None and trigger.case_id:
            case = self.store.cases.get(trigger.case_id)
        decision = decide_contact(trigger, self.store.directory.account(trigger.customer_id), case,
                                  mailbox=self.mailbox)
        outcome = decision.outcome
        if decision.deliveries and not self.enqueue(decision.deliveries, now):
            outcome = "duplicate"
        self._count(trigger, outcome, now)
        return outcome

    def _count(self, trigger: ContactTrigger, outcome: ContactOutcome, now: datetime) -> None:
        self.metrics.customer_messages.labels(kind=trigger.kind, outcome=outcome).inc()
        if outcome == "sent" and trigger.kind == "purchase_followup" and is_late(trigger, now):
            self.metrics.followups_late.inc()
            logger.warning("followup_late", extra={"key": trigger.key,
                                                   "due_at": trigger.due_at.isoformat() if trigger.due_at else None})
        logger.info("customer_contact", extra={"kind": trigger.kind, "key": trigger.key, "outcome": outcome})

    def status_changed(self, case: Case) -> ContactOutcome | None:
        """The acknowledgement or the resolution check-in, when ``case`` has just moved to that status."""
        trigger = on_status(case)
        return self.contact(trigger, case) if trigger is not None else None

    def cases_opened(self, cases: Sequence[Case]) -> int:
        """Schedule each case's delay notice at its internal target; how many were new."""
        notices = [n for c in cases if (n := delay_notice_for(c)) is not None]
        return self.store.scheduled.schedule(notices) if notices else 0

    def notification(self, event: CustomerThanked | FollowUpDue) -> ContactOutcome | None:
        """An event of ``customer.notifications.v1``: a thank-you goes now, a follow-up is scheduled (and
        sent at once if already due, as after a long outage)."""
        return self.notifications([event])[0]

    def notifications(self, events: Sequence[CustomerThanked | FollowUpDue]) -> list[ContactOutcome | None]:
        """``notification`` for a batch, in a few commands whatever its size (a repeat customer's purchase
        brings a thank-you and a follow-up): one insert for the follow-ups, one account read and one
        outbox insert for the thank-yous. The outcome of each event, in order."""
        followups = {i: followup_for(e, self.followup_lead) for i, e in enumerate(events)
                     if isinstance(e, FollowUpDue)}
        if followups:
            self.store.scheduled.schedule(list(followups.values()))
        now = self.clock()
        outcomes: list[ContactOutcome | None] = [None] * len(events)
        for i, outcome in zip(
                [i for i, e in enumerate(events) if isinstance(e, CustomerThanked)],
                self.contact_all([on_thanked(e) for e in events if isinstance(e, CustomerThanked)]), strict=True):
            outcomes[i] = outcome
        for i, followup in followups.items():
            if followup.due_at <= now:
                outcomes[i] = self._send(followup)
        return outcomes

    def contact_all(self, triggers: Sequence[ContactTrigger]) -> list[ContactOutcome]:
        """``contact`` for triggers about no case (thank-yous): their accounts in one read, their messages
        in one outbox insert. The outcome of each, in order."""
        if not triggers:
            return []
        now = self.clock()
        accounts = self.store.directory.accounts_by_id({t.customer_id for t in triggers})
        decisions = [decide_contact(t, accounts.get(t.customer_id), None, mailbox=self.mailbox) for t in triggers]
        added = {doc["_id"] for doc in self.enqueue([d for decision in decisions for d in decision.deliveries], now)}
        outcomes: list[ContactOutcome] = []
        for decision in decisions:
            outcome = decision.outcome
            ids = {d.delivery_id for d in decision.deliveries}
            if ids and not ids & added:
                outcome = "duplicate"  # in the outbox before, or by an earlier copy in this batch
            added -= ids
            self._count(decision.trigger, outcome, now)
            outcomes.append(outcome)
        return outcomes

    # ---- later -----------------------------------------------------------------------------------
    def sweep(self, limit: int = 200) -> int:
        """Send (or skip) every scheduled contact due now; how many were settled by this call."""
        settled = 0
        for contact in self.store.scheduled.due(self.clock(), limit):
            self._send(contact)
            settled += 1
        return settled

    def _send(self, contact: ScheduledContact) -> ContactOutcome:
        outcome = self.contact(contact.trigger())
        self.store.scheduled.settle(contact.contact_id, outcome, self.clock())
        return outcome

    async def run_forever(self, interval_s: float, on_enqueued: Callable[[], None] = lambda: None) -> None:
        async def tick() -> None:
            if await asyncio.to_thread(self.sweep):
                on_enqueued()

        await every(interval_s, tick, name="customer_contact_sweep")
