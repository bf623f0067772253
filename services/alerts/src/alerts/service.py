"""Alerts' service layer: a batch of scored items → load the state it touches → decide → persist → effects.

The stream calls ``handle_batch`` with a whole agent batch: a few bulk reads, the pure ``decide``, then
bulk writes in an order that a crash at any point leaves completable by the redelivery (items linked
to their cases, then the cases, their updates, the pages, the cool-down clock).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from alerts.checkin import answer_for, reference_in
from alerts.config import Settings
from alerts.contacts import CustomerContacts
from alerts.decide import (
    AlertEvent,
    BatchState,
    CaseUpdate,
    Decisions,
    Routing,
    alert_event,
    crisis_id_at,
    decide,
    decide_crisis,
    pages,
    webhook_delivery,
)
from alerts.domain import Case, Delivery, Snapshot
from alerts.insights import InsightItem
from alerts.metrics import AlertsMetrics, InsightsConsumer
from alerts.replies import ReplyPlan
from alerts.rules import AlertPolicy, resume_fields, should_alert
from alerts.silence import interactions
from alerts.stores import AlertsStore
from alerts.timeline import commerce_entry, feedback_entry, points_entry, reply_entry
from feedback_shared.events import FeedbackScored, OrderReturned, PurchaseRecorded, utcnow

logger = logging.getLogger(__name__)


def routing_of(settings: Settings) -> Routing:
    return Routing(fallback_csm_id=settings.fallback_csm_id, fallback_notify=tuple(settings.fallback_notify),
                   manager_notify=tuple(settings.manager_notify), inbox_url=settings.inbox_url,
                   webhook_url=settings.webhook_url)


class AlertService:
    """Turns scored items into new cases (paged), updates of open cases, a crisis, or nothing."""

    def __init__(self, store: AlertsStore, settings: Settings, metrics: AlertsMetrics, policy: AlertPolicy,
                 clock: Callable[[], datetime] = utcnow,
                 handoff: Callable[[dict[str, Any]], None] | None = None) -> None:
        """``handoff``: where new deliveries go, already claimed, to be sent by this process (the
        dispatcher's ``hand_over``); without it they wait in the outbox for a worker to claim them."""
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.policy = policy
        self.routing = routing_of(settings)
        self.clock = clock
        self.handoff = handoff
        mailbox = settings.customer_mail_url.get_secret_value() if settings.customer_mail_url else None
        #: Messages to the customer: acknowledgement, delay notice, thank-you, follow-up, check-in.
        self.contacts = CustomerContacts(store, metrics, self._enqueue, mailbox=mailbox, clock=clock,
                                         followup_lead=timedelta(seconds=settings.followup_lead_s))
        #: The crisis id of the current spike window once it is in the database (by this worker or another).
        self._crisis_raised: str | None = None

    def handle(self, scored: FeedbackScored) -> list[AlertEvent]:
        return self.handle_batch([scored])

    def handle_batch(self, batch: Sequence[FeedbackScored]) -> list[AlertEvent]:
        self.metrics.handled.inc(len(batch))
        now = self.clock()
        events, answered = self.checkin_answers(batch, now)
        negatives = [scored for scored in batch if should_alert(scored) and scored.feedback_event_id not in answered]
        if negatives:
            state = self.load(negatives)
            events += self.apply(decide(negatives, state, self.policy, self.routing, now), state, now)
        # The customers' timelines (the case page) and when they last interacted (silent customers):
        # every item with a customer, one write each per batch.
        self.record_timeline([e for e in map(feedback_entry, batch) if e is not None])
        return events + self.resume_waiting(batch, now)

    def checkin_answers(self, batch: Sequence[FeedbackScored], now: datetime) -> tuple[list[AlertEvent], set[Any]]:
        """Items that answer a resolved case's check-in (see ``alerts.checkin``): "not solved" opens the
        case again and pages its CSM; any other answer is recorded on it. The events, and the items
        handled here (they open no case of their own)."""
        answering = [(s, ref) for s in batch if (ref := reference_in(s))]
        if not answering:
            return [], set()
        candidates = self.store.cases.by_references({ref for _, ref in answering})
        events: list[AlertEvent] = []
        handled: set[Any] = set()
        for scored, ref in answering:
            answer = answer_for(scored, ref, candidates, self.policy, now)
            if answer is None:
                continue
            handled.add(scored.feedback_event_id)
            item = str(scored.feedback_event_id)
            cases = self.store.cases
            cases.link([(item, answer.case.id)])
            updated = cases.act(answer.case.id, answer.fields, answer.entry, now, ("resolved",), once_per_item=item)
            if updated is None:
                continue  # a redelivery: done the first time
            self.metrics.checkin_answers.labels(outcome=answer.outcome).inc()
            if answer.outcome == "reopen":
                cases.add_items([CaseUpdate(updated.id, item, Snapshot.of(scored), now)])
                csms = self.store.directory.csms_by_id([updated.csm_id])
                urls = list(csms[updated.csm_id].notify) if updated.csm_id in csms else []
                if urls:
                    text = scored.text[:300]
                    self.enqueue_pages(updated, urls, f"[{updated.priority}] Reopened: the customer says it is not solved",
                                       text, cause=f"reopened:{item}")
            events.append(self.announce(updated, f"{answer.entry['action']}:{item}", action=answer.entry["action"],
                                        actor=scored.customer_id))
        return events, handled

    def record_commerce(self, events: Sequence[PurchaseRecorded | OrderReturned]) -> int:
        return self.record_timeline([commerce_entry(e) for e in events if e.customer_id])

    def record_insights(self, items: Sequence[InsightItem], consumer: InsightsConsumer) -> int:
        """Add a batch to the insights read model (each item once); counts what was new and what was there
        already, and times the write. Returns how many were new."""
        with self.metrics.insights_write.labels(consumer=consumer).time():
            recorded = self.store.insights.record(items)
        self.metrics.insight_items.labels(consumer=consumer, outcome="recorded").inc(recorded)
        self.metrics.insight_items.labels(consumer=consumer, outcome="duplicate").inc(len(items) - recorded)
        return recorded

    def record_timeline(self, entries: list[dict[str, Any]]) -> int:
        added = self.store.timeline.add(entries)
        self.store.activity.touch(interactions(entries))
        return added

    def enqueue_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        self._enqueue(deliveries, self.clock())

    def record_points(self, events: Sequence[Any]) -> int:
        """Points and tier changes on the customers' timelines, in one write."""
        return self.store.timeline.add([e for e in map(points_entry, events) if e is not None])

    def resume_waiting(self, batch: Sequence[FeedbackScored], now: datetime) -> list[AlertEvent]:
        """The customer wrote again: their cases waiting on them go back to where they were, with the
        promise and the internal target moved on by the time spent waiting."""
        customers = {s.customer_id for s in batch if s.customer_id}
        waiting = self.store.cases.waiting_cases(customers) if customers else []
        resumed = [(case.id, resume_fields(case, now)) for case in waiting]
        if not resumed or self.store.cases.resume(resumed, now) == 0:
            return []
        events = []
        for case, (_, fields) in zip(waiting, resumed, strict=True):
            updated = case.model_copy(update=fields)
            events.append(self.announce(updated, f"resumed:{case.waiting_since}"))
        return events

    # ---- load ------------------------------------------------------------------------------------
    def load(self, batch: Sequence[FeedbackScored]) -> BatchState:
        """The state ``batch`` touches, in one read per kind (three or four for a batch; CSMs are cached)."""
        cases, directory = self.store.cases, self.store.directory
        cases_by_event = cases.cases_of_events([str(s.feedback_event_id) for s in batch])
        customers = {s.customer_id for s in batch if s.customer_id}
        accounts = directory.accounts_by_id(customers)
        csm_ids = ({a.csm_id for a in accounts.values() if a.csm_id} | {c.csm_id for c in cases_by_event.values()}
                   | {self.routing.fallback_csm_id})
        return BatchState(
            cases_by_event=cases_by_event, customer_cases=cases.customer_cases(customers),
            thread_cases=cases.open_thread_cases({s.thread_id for s in batch if s.thread_id}),
            accounts=accounts, csms=directory.csms_by_id(csm_ids),
        )

    # ---- persist and effects ---------------------------------------------------------------------
    def apply(self, decisions: Decisions, state: BatchState, now: datetime) -> list[AlertEvent]:
        cases = self.store.cases
        linked_now = cases.link(decisions.links)
        # Before the insert: a crash between the two leaves the case to be decided new again on the
        # redelivery (scheduling is idempotent); after it, a redelivery would not see the case as new.
        self.contacts.cases_opened(list(decisions.new_cases.values()))
        for case_id in cases.insert(list(decisions.new_cases.values())):
            self._raised(decisions.new_cases[case_id])
        cases.add_items(decisions.updates)
        self.metrics.case_updates.inc(decisions.added_to_open)
        self._enqueue(decisions.deliveries, now)
        events = list(decisions.events) + self._spike(decisions, linked_now, state, now)
        for scored in decisions.skipped_erased:
            self.metrics.erased_skipped.inc()
            logger.info("erased_customer_item_dropped", extra={"event_id": str(scored.feedback_event_id),
                                                               "trace_id": scored.trace_id})
        for case in decisions.unroutable:
            logger.warning("no_notify_urls", extra={"alert_id": case.id, "csm": case.csm_id})
        return events

    def _spike(self, decisions: Decisions, linked_now: set[str], state: BatchState,
               now: datetime) -> list[AlertEvent]:
        """Count the batch's negative public items in the spike window, each once: only those linked to
        a case by this call (a redelivered item's link is there already), so the links, written anyway,
        are the dedupe. Then the crisis, unless this window's is known to be out (in a crisis, every
        batch would pay for a count that decides nothing)."""
        new = [s for s in decisions.public if str(s.feedback_event_id) in linked_now]
        if not new:
            return []
        self.store.spikes.add(len(new), now)
        if crisis_id_at(now, self.policy) == self._crisis_raised:
            return []
        count = self.store.spikes.count(now, timedelta(minutes=self.policy.spike.window_minutes))
        crisis = decide_crisis(new[-1], count, state.csms, self.policy, self.routing, now)
        if crisis is None:
            return []
        inserted = self.store.cases.insert([crisis.case])
        self._crisis_raised = crisis.case.id  # only the current window's matters
        if not inserted:
            return []
        self._raised(crisis.case)
        logger.warning("crisis_alert", extra={"alert_id": crisis.case.id, "count": crisis.case.event_count,
                                              "window_min": self.policy.spike.window_minutes})
        self._enqueue(crisis.deliveries, now)
        return crisis.events

    def _raised(self, case: Case) -> None:
        self.metrics.raised.labels(priority=case.priority).inc()
        logger.info("alert_raised", extra={"alert_id": case.id, "priority": case.priority, "csm": case.csm_id,
                                           "paged": case.paged, "event_id": case.first_feedback_event_id,
                                           "trace_id": case.trace_id})

    def _enqueue(self, deliveries: Sequence[Delivery], now: datetime) -> list[dict[str, Any]]:
        """Put ``deliveries`` in the outbox (those there already are skipped); the ones added."""
        lease = timedelta(seconds=self.settings.delivery_lease_s) if self.handoff else None
        added = self.store.outbox.enqueue(deliveries, now, claim_for=lease)
        if self.handoff is not None:
            for doc in added:
                self.handoff(doc)
        return added

    def enqueue_pages(self, case: Case, urls: list[str], title: str, body: str, *, cause: str = "") -> None:
        self._enqueue(pages(case, urls, title, body, cause=cause), self.clock())

    def send_reply(self, case: Case, plan: ReplyPlan) -> tuple[Case, AlertEvent]:
        """Record the reply on the case (the first moves it to responded), hand the message to the
        outbox, and announce it. Sending the same reply again records and sends nothing new."""
        now = self.clock()
        updated = self.store.cases.add_reply(case.id, plan.reply, now) or case
        if case.customer_id:
            self.store.timeline.add([reply_entry(case.customer_id, case.id, plan.reply)])
        self._enqueue([plan.delivery], now)
        for code in plan.overridden:
            self.metrics.findings_overridden.labels(code=code).inc()
        self.metrics.replies.labels(channel=plan.reply["channel"]).inc()
        return updated, self.announce(updated, f"reply:{plan.reply['channel']}:{plan.reply['reply_id']}")

    def act(self, case: Case, action: str, by: dict[str, Any] | None, fields: dict[str, Any], *,
            from_statuses: tuple[str, ...] | None = None, detail: dict[str, Any] | None = None,
            cause: str | None = None) -> tuple[Case | None, AlertEvent | None]:
        """A CSM's action on a case: set ``fields``, record who did what in its history, announce it.
        None when the case's status does not allow the action."""
        now = self.clock()
        entry = {"action": action, "by": by, "at": now, **(detail or {})}
        updated = self.store.cases.act(case.id, fields, entry, now, from_statuses)
        if updated is None:
            return None, None
        actor = (by or {}).get("csm_id") or (by or {}).get("token_id")
        event = self.announce(updated, cause or f"{action}:{now.isoformat()}", action=action, actor=actor)
        if "status" in fields:
            # The customer hears of it: an acknowledgement with the answer-by promise, a check-in once resolved.
            self.contacts.status_changed(updated)
        return updated, event

    def status_changed(self, case: Case, to: str) -> AlertEvent:
        """``case`` has just moved to ``to``: announce it, and tell the customer (an acknowledgement with
        the answer-by promise, a check-in once resolved)."""
        event = self.announce(case, f"status:{to}")
        self.contacts.status_changed(case)
        return event

    def announce(self, case: Case, cause: str, *, action: str | None = None, actor: str | None = None) -> AlertEvent:
        """An update of ``case`` (status change, escalation, breach) for the topic and the webhook."""
        event = alert_event(case, "updated", cause=cause, action=action or cause.split(":", 1)[0], actor=actor)
        self._enqueue(webhook_delivery(event, self.routing), self.clock())
        return event

    # ---- tiers and erasure -----------------------------------------------------------------------
    def set_tier(self, customer_id: str, tier: str, caused_at: datetime | None) -> bool:
        return self.store.directory.set_tier(customer_id, tier, caused_at)

    def erase_customer(self, customer_id: str, requested_at: datetime) -> dict[str, int]:
        return self.store.erase_customer(customer_id, self.clock(), requested_at)
