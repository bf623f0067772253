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
        self.metrics.customer_messages.labels(kind=trigger.kind, outcome=outcome).inc()
        if outcome == "sent" and trigger.kind == "purchase_followup" and is_late(trigger, now):
            self.metrics.followups_late.inc()
            logger.warning("followup_late key=%s due_at=%s", trigger.key,
                           trigger.due_at.isoformat() if trigger.due_at else "-")
        logger.info("customer_contact kind=%s key=%s outcome=%s", trigger.kind, trigger.key, outcome)
        return outcome

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
        if isinstance(event, CustomerThanked):
            return self.contact(on_thanked(event))
        followup = followup_for(event, self.followup_lead)
        self.store.scheduled.schedule([followup])
        return self._send(followup) if followup.due_at <= self.clock() else None

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
