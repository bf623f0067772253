"""Alerts' core: a batch of scored items and the state they touch in, decisions out. Pure: no I/O.

``AlertService`` loads a ``BatchState`` for a whole agent batch in a few bulk reads, calls ``decide``,
and applies the ``Decisions`` with bulk writes. Every id in a decision is derived from what it is for
(the case from the item that opened it, a page from the case and the address), so deciding the same
batch again after a crash writes nothing twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alerts.domain import Account, Case, Csm, Delivery, Snapshot
from alerts.rules import (
    AlertPolicy,
    needs_negative_first,
    notification_text,
    priority,
    recommended_channel,
    route,
    should_alert,
    sla_deadlines,
)
from feedback_shared.events import AlertRaised, AlertUpdated, FeedbackScored, derived_id, erased_with
from feedback_shared.topics import ALERT_EVENTS

AlertEvent = AlertRaised | AlertUpdated


@dataclass(frozen=True)
class Routing:
    """Where pages go when the account names no one, and what they link to (from the settings)."""

    fallback_csm_id: str = "fallback-queue"
    fallback_notify: tuple[str, ...] = ()
    manager_notify: tuple[str, ...] = ()
    inbox_url: str = "http://127.0.0.1:8002/"
    webhook_url: str | None = None


@dataclass
class BatchState:
    """What a batch touches, as loaded before deciding."""

    #: Cases the batch's items are already linked to (a redelivery), by feedback event id.
    cases_by_event: dict[str, Case] = field(default_factory=dict)
    #: Every case of each customer in the batch (summaries: no texts), for the open case and the count.
    customer_cases: dict[str, list[Case]] = field(default_factory=dict)
    #: The newest open case of each thread in the batch.
    thread_cases: dict[str, Case] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    csms: dict[str, Csm] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseUpdate:
    """An item added to a case that was open before the batch."""

    alert_id: str
    feedback_event_id: str
    latest: Snapshot
    at: datetime


@dataclass
class Crisis:
    case: Case
    deliveries: list[Delivery]
    events: list[AlertEvent]


@dataclass
class Decisions:
    #: Cases opened by this batch, in their state after it (later items of the batch included).
    new_cases: dict[str, Case] = field(default_factory=dict)
    #: (feedback event id, case id): each item claimed for its case, written before the case itself.
    links: list[tuple[str, str]] = field(default_factory=list)
    updates: list[CaseUpdate] = field(default_factory=list)
    #: Pages and webhook calls for the outbox.
    deliveries: list[Delivery] = field(default_factory=list)
    #: ``alerts.events.v1``, in order.
    events: list[AlertEvent] = field(default_factory=list)
    #: Negative public items linked to a case here, in order: they count towards a crisis once their
    #: links are written (``decide_crisis``).
    public: list[FeedbackScored] = field(default_factory=list)
    skipped_erased: list[FeedbackScored] = field(default_factory=list)
    #: Cases whose CSM has no address to page (logged).
    unroutable: list[Case] = field(default_factory=list)
    #: Items added to a case that was already open (``alert_case_updates_total``).
    added_to_open: int = 0


def alert_event(case: Case, kind: str, *, cause: str, trace_id: str | None = None, action: str | None = None,
                actor: str | None = None) -> AlertEvent:
    """The event announcing a case change; its id is derived from the case and the cause, so a retry
    announces the same event (receivers de-duplicate on ``webhook-id``). An update names its action
    and who did it (the audit trail)."""
    fields: dict[str, Any] = {
        "event_id": derived_id("alert-event", case.id, cause), "trace_id": trace_id or case.trace_id or "-",
        "alert_id": case.id,
        "feedback_event_id": (uuid.UUID(case.first_feedback_event_id) if case.first_feedback_event_id
                              else derived_id("none", case.id)),
        "customer_id": case.customer_id, "csm_id": case.csm_id, "priority": case.priority, "status": case.status,
        "needs": list(case.needs), "event_count": case.event_count,
    }
    if kind == "raised":
        return AlertRaised(**fields)
    return AlertUpdated(**fields, action=action, actor=actor)


def webhook_delivery(event: AlertEvent, routing: Routing) -> list[Delivery]:
    """The signed webhook call announcing ``event`` to integrations, if one is configured."""
    if not routing.webhook_url:
        return []
    return [Delivery(delivery_id=str(derived_id("webhook", event.event_id)), kind="webhook", alert_id=event.alert_id,
                     url=routing.webhook_url, msg_id=str(event.event_id),
                     payload=ALERT_EVENTS.encode(event).decode())]


def pages(case: Case, urls: list[str] | tuple[str, ...], title: str, body: str, *, cause: str = "") -> list[Delivery]:
    return [Delivery(delivery_id=str(derived_id("delivery", case.id, url, cause)), kind="apprise", alert_id=case.id,
                     url=url, title=title, body=body, feedback_ingested_at=case.feedback_ingested_at)
            for url in urls]


def crisis_id_at(now: datetime, policy: AlertPolicy) -> str:
    """The id of the crisis case of the spike window ``now`` falls in."""
    window = timedelta(minutes=policy.spike.window_minutes)
    return str(derived_id("crisis", int(now.timestamp() // window.total_seconds())))


def decide(batch: list[FeedbackScored], state: BatchState, policy: AlertPolicy, routing: Routing,
           now: datetime) -> Decisions:
    """Cases, pages and announcements for ``batch``, item by item in order, as if each had been handled
    alone: a later item of the batch sees the case an earlier one opened or updated."""
    return _Decider(state, policy, routing, now).run(batch)


def decide_crisis(latest: FeedbackScored, count: int, csms: dict[str, Csm], policy: AlertPolicy, routing: Routing,
                  now: datetime) -> Crisis | None:
    """One crisis alert when the negative public items in the window (``count``, the latest batch's
    included) pass the threshold (seed 002). Raised only if its insert is the first: another worker may
    have raised this window's crisis already."""
    spike = policy.spike
    if count <= spike.threshold:
        return None
    crisis_id = crisis_id_at(now, policy)
    text = (f"{count} negative public items in {spike.window_minutes:g} minutes; "
            f"latest on {latest.source}: {latest.text[:200]}")
    crisis = Case(
        _id=crisis_id, kind="crisis", customer_id=None, csm_id=routing.fallback_csm_id, priority="critical",
        status="open", event_count=count, paged=True, created_at=now, updated_at=now,
        # Whose post the excerpt quotes: an erasure of that customer blanks it (``erase_customer``).
        latest=Snapshot(text=text, source=latest.source, customer_id=latest.customer_id),
        recommended_channel="social_reply",
    )
    fallback = csms.get(routing.fallback_csm_id)
    urls = list(routing.manager_notify) or list(routing.fallback_notify)
    urls += list(fallback.notify) if fallback else []
    title = f"[critical] Crisis: {count} negative public posts in {spike.window_minutes:g} minutes"
    body = f"{text}\nCase {crisis_id}: {routing.inbox_url}"
    event = alert_event(crisis, "raised", cause="crisis")
    return Crisis(crisis, pages(crisis, sorted(set(urls)), title, body) + webhook_delivery(event, routing), [event])


class _Decider:
    def __init__(self, state: BatchState, policy: AlertPolicy, routing: Routing, now: datetime) -> None:
        self.state, self.policy, self.routing, self.now = state, policy, routing, now
        self.out = Decisions()
        #: Every case the batch has seen, in its latest state, by id.
        self.cases: dict[str, Case] = {}
        self.open_by_customer: dict[str, str] = {}
        self.count_by_customer: dict[str, int] = {}
        #: When each customer's CSM was last paged for a case of theirs (the cool-down's clock): a page
        #: goes out exactly when a paged case opens, so the customer's cases tell.
        self.last_page: dict[str, datetime] = {}
        for customer, cases in state.customer_cases.items():
            own = [c for c in cases if c.kind == "case"]
            self.count_by_customer[customer] = len(own)
            paged = [c.created_at for c in own if c.paged]
            if paged:
                self.last_page[customer] = max(paged)
            open_ = [c for c in own if c.is_open]
            if open_:
                newest = max(open_, key=lambda c: c.created_at)
                self.cases[newest.id] = newest
                self.open_by_customer[customer] = newest.id
        self.open_by_thread: dict[str, str] = {}
        for thread, case in state.thread_cases.items():
            self.cases.setdefault(case.id, case)
            self.open_by_thread[thread] = case.id
        self.seen: set[str] = set()

    def run(self, batch: list[FeedbackScored]) -> Decisions:
        for scored in batch:
            feedback_id = str(scored.feedback_event_id)
            if not should_alert(scored) or feedback_id in self.seen:
                continue  # an item twice in one batch (a producer's retry) is decided once
            self.seen.add(feedback_id)
            linked = len(self.out.links)
            self._case(scored, feedback_id)
            if scored.is_public and len(self.out.links) > linked:
                self.out.public.append(scored)
        return self.out

    # ---- cases -----------------------------------------------------------------------------------
    def _announce(self, case: Case, kind: str, cause: str, trace_id: str | None = None) -> None:
        event = alert_event(case, kind, cause=cause, trace_id=trace_id)
        self.out.events.append(event)
        self.out.deliveries += webhook_delivery(event, self.routing)

    def _account(self, customer_id: str | None) -> Account | None:
        return self.state.accounts.get(customer_id) if customer_id else None

    def _case(self, scored: FeedbackScored, feedback_id: str) -> None:
        alert_id = str(derived_id("alert", feedback_id))
        existing = self.state.cases_by_event.get(feedback_id)
        if existing is not None:
            self._redelivered(scored, feedback_id, alert_id, self.cases.get(existing.id, existing))
            return
        open_case = self._open_case(scored.customer_id, scored.thread_id)
        if open_case is not None and erased_with(scored.ingested_at, open_case.customer_erased_at):
            self.out.skipped_erased.append(scored)
            return
        if open_case is not None:
            self._add(open_case, scored, feedback_id)
            return
        account = self._account(scored.customer_id)
        if account is not None and erased_with(scored.ingested_at, account.erased_at):
            self.out.skipped_erased.append(scored)
            return
        self._open(scored, feedback_id, alert_id, account)

    def _redelivered(self, scored: FeedbackScored, feedback_id: str, alert_id: str, existing: Case) -> None:
        if existing.erased_at is not None:
            self.out.skipped_erased.append(scored)  # a redelivery into a case erased since: nothing to bring back
            return
        if feedback_id not in existing.feedback_event_ids:
            # Linked to the case, then the worker stopped before the case itself was updated.
            self.out.updates.append(CaseUpdate(existing.id, feedback_id, Snapshot.of(scored), self.now))
        if existing.id == alert_id and existing.paged:
            # Redelivery of the item that opened this case: make sure its pages are queued.
            self._page(existing, scored, self._account(scored.customer_id))
        kind = "raised" if existing.id == alert_id else "updated"
        self._announce(existing, kind, feedback_id, scored.trace_id)

    def _open_case(self, customer_id: str | None, thread_id: str | None) -> Case | None:
        """The newest open case of the customer or the thread: the customer need not explain twice."""
        ids = [self.open_by_customer.get(customer_id or ""), self.open_by_thread.get(thread_id or "")]
        candidates = [self.cases[i] for i in ids if i]
        return max(candidates, key=lambda c: c.created_at) if candidates else None

    def _remember(self, case: Case) -> None:
        self.cases[case.id] = case
        if case.customer_id:
            self.open_by_customer[case.customer_id] = case.id
        if case.thread_id:
            self.open_by_thread[case.thread_id] = case.id

    def _add(self, case: Case, scored: FeedbackScored, feedback_id: str) -> None:
        """More negatives while a case is open update it without paging again."""
        latest = Snapshot.of(scored)
        updated = case.model_copy(update={"event_count": case.event_count + 1, "latest": latest,
                                          "updated_at": self.now})
        self.out.links.append((feedback_id, case.id))
        self.out.added_to_open += 1
        if case.id in self.out.new_cases:
            # Opened by this batch: the insert carries the item.
            updated = updated.model_copy(update={"feedback_event_ids": [*case.feedback_event_ids, feedback_id]})
            self.out.new_cases[case.id] = updated
        else:
            self.out.updates.append(CaseUpdate(case.id, feedback_id, latest, self.now))
        self._remember(updated)
        self._announce(updated, "updated", feedback_id, scored.trace_id)

    def _open(self, scored: FeedbackScored, feedback_id: str, alert_id: str, account: Account | None) -> None:
        customer = scored.customer_id
        earlier = self.count_by_customer.get(customer, 0) if customer else 0
        prio = priority(scored, tier=account.tier if account else None, earlier_cases=earlier, policy=self.policy)
        internal_target, promised_by = sla_deadlines(prio, scored.channel, self.now, self.policy)
        last_page = self.last_page.get(customer or "")
        cooling = last_page is not None and self.now - last_page < timedelta(minutes=self.policy.cooldown_minutes)
        latest = Snapshot.of(scored)
        case = Case(
            _id=alert_id, kind="case", feedback_event_ids=[feedback_id], first_feedback_event_id=feedback_id,
            customer_id=customer, thread_id=scored.thread_id, channel=scored.channel,
            csm_id=route(account, self.routing.fallback_csm_id), priority=prio, status="open",
            needs=needs_negative_first(scored), event_count=1, earlier_cases=earlier,
            recommended_channel=recommended_channel(scored, account, self.policy),
            internal_target=internal_target, promised_by=promised_by, paged=not cooling, latest=latest,
            first=latest, feedback_ingested_at=scored.ingested_at, created_at=self.now, updated_at=self.now,
            trace_id=scored.trace_id,
            # A case after an erasure: an item from before it, arriving late, must not join this case.
            customer_erased_at=account.erased_at if account else None,
        )
        self.out.links.append((feedback_id, alert_id))
        self.out.new_cases[alert_id] = case
        if customer:
            self.count_by_customer[customer] = earlier + 1
        self._remember(case)
        if case.paged:
            self._page(case, scored, account)
            if customer:
                self.last_page[customer] = self.now
        self._announce(case, "raised", feedback_id, scored.trace_id)

    def _page(self, case: Case, scored: FeedbackScored, account: Account | None) -> None:
        csm = self.state.csms.get(case.csm_id)
        urls = list(csm.notify) if csm else []
        if not urls and case.csm_id == self.routing.fallback_csm_id:
            urls = list(self.routing.fallback_notify)
        if not urls:
            self.out.unroutable.append(case)
            return
        title, body = notification_text(
            scored, priority_=case.priority, account=account, alert_id=case.id, inbox_url=self.routing.inbox_url,
            channel=case.recommended_channel, promised_by=case.promised_by, earlier_cases=case.earlier_cases,
        )
        self.out.deliveries += pages(case, urls, title, body)
