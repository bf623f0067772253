"""The stream side: scored feedback in; cases, outbox deliveries and ``alerts.events.v1`` out.
Also keeps alerts' own view of loyalty tiers, and acts on erasure requests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import faust

from alerts.config import Settings
from alerts.metrics import AlertsMetrics
from alerts.repository import AlertsRepository
from alerts.rules import (
    Account,
    AlertPolicy,
    notification_text,
    priority,
    recommended_channel,
    route,
    should_alert,
    sla_deadlines,
)
from feedback_shared.events import (
    AlertRaised,
    AlertUpdated,
    CustomerErasureRequested,
    FeedbackScored,
    derived_id,
    erased_with,
    utcnow,
)
from feedback_shared.kafka import EventSink, register_agent, register_batch_agent
from feedback_shared.topics import ALERT_EVENTS, CUSTOMER_ERASURE, FEEDBACK_SCORED, LOYALTY_POINTS

logger = logging.getLogger(__name__)
AlertEvent = AlertRaised | AlertUpdated


def _latest(scored: FeedbackScored) -> dict[str, Any]:
    return {
        "feedback_event_id": str(scored.feedback_event_id), "text": scored.text, "language": scored.language,
        "source": scored.source, "kind": scored.kind, "url": scored.url, "rating": scored.rating,
        "sentiment": scored.sentiment.model_dump(), "needs": [n.model_dump() for n in scored.needs],
        "anger": scored.anger, "urgency": scored.urgency, "occurred_at": scored.occurred_at,
    }


def alert_event(case: dict[str, Any], kind: str, *, cause: str, trace_id: str | None = None) -> AlertEvent:
    """The event announcing a case change; its id is derived from the case and the cause, so a retry
    announces the same event (receivers de-duplicate on ``webhook-id``)."""
    model = AlertRaised if kind == "raised" else AlertUpdated
    return model(
        event_id=derived_id("alert-event", case["_id"], cause), trace_id=trace_id or case.get("trace_id") or "-",
        alert_id=case["_id"], feedback_event_id=case.get("first_feedback_event_id") or derived_id("none", case["_id"]),
        customer_id=case.get("customer_id"), csm_id=case.get("csm_id"), priority=case["priority"],
        status=case["status"], needs=list(case.get("needs", [])), event_count=int(case.get("event_count", 1)),
    )


class AlertHandler:
    """Turns one scored item into a new case (paged), an update of an open case, or nothing."""

    def __init__(self, repo: AlertsRepository, settings: Settings, metrics: AlertsMetrics, policy: AlertPolicy,
                 clock: Callable[[], datetime] = utcnow, handoff: Callable[[dict[str, Any]], None] | None = None) -> None:
        """``handoff``: where new deliveries go, already claimed, to be sent by this process (the
        dispatcher's ``hand_over``); without it they wait in the outbox for a worker to claim them."""
        self.repo = repo
        self.handoff = handoff
        self.settings = settings
        self.metrics = metrics
        self.policy = policy
        self.clock = clock
        #: The crisis id of the current spike window once it is in the database (by this worker or another).
        self._crisis_raised: str | None = None

    def handle(self, scored: FeedbackScored) -> list[AlertEvent]:
        self.metrics.handled.inc()
        if not should_alert(scored):
            return []
        events = self._case(scored)
        if scored.is_public:
            events += self._spike(scored)
        return events

    # ---- cases -----------------------------------------------------------------------------------
    def _case(self, scored: FeedbackScored) -> list[AlertEvent]:
        feedback_id = str(scored.feedback_event_id)
        alert_id = str(derived_id("alert", feedback_id))
        now = self.clock()
        existing = self.repo.case_with_event(feedback_id)
        if existing is not None and existing.get("erased_at") is not None:
            return self._skip_erased(scored)  # a redelivery into a case erased since: nothing to bring back
        if existing is not None:
            if feedback_id not in existing.get("feedback_event_ids", []):
                # Linked to the case, then the worker stopped before the case itself was updated.
                self.repo.add_event_to_case(existing["_id"], feedback_id, _latest(scored), now)
            if existing["_id"] == alert_id and existing.get("paged"):
                # Redelivery of the event that opened this case: make sure its pages are queued.
                self._enqueue_pages(existing, scored, self.repo.get_account(scored.customer_id))
            kind = "raised" if existing["_id"] == alert_id else "updated"
            event = alert_event(existing, kind, cause=feedback_id, trace_id=scored.trace_id)
            self._enqueue_webhook(event, existing)
            return [event]
        open_case, earlier = self.repo.case_history(scored.customer_id, scored.thread_id)
        if open_case is not None and erased_with(scored.ingested_at, open_case.get("customer_erased_at")):
            return self._skip_erased(scored)
        if open_case is not None:
            # Cases, not pages: more negatives while a case is open update it without paging again.
            latest = _latest(scored)
            updated = open_case
            if self.repo.add_event_to_case(open_case["_id"], feedback_id, latest, now):
                # The case as written, without reading it back (a read per update was 4 % of the database's
                # time in make bench). A customer's items come in order on one partition; only a thread
                # shared by two customers could make the announced count lag one behind the stored one.
                updated = {**open_case, "event_count": int(open_case.get("event_count", 1)) + 1, "latest": latest,
                           "updated_at": now}
            self.metrics.case_updates.inc()
            event = alert_event(updated, "updated", cause=feedback_id, trace_id=scored.trace_id)
            self._enqueue_webhook(event, updated)
            return [event]
        account = self.repo.get_account(scored.customer_id)
        if account is not None and erased_with(scored.ingested_at, account.erased_at):
            return self._skip_erased(scored)
        latest = _latest(scored)
        prio = priority(scored, tier=account.tier if account else None, earlier_cases=earlier, policy=self.policy)
        internal_target, promised_by = sla_deadlines(prio, scored.channel, now, self.policy)
        last_page = self.repo.last_paged_at(scored.customer_id) if scored.customer_id else None
        cooling = last_page is not None and now - last_page < timedelta(minutes=self.policy.cooldown_minutes)
        case: dict[str, Any] = {
            "_id": alert_id, "kind": "case", "feedback_event_ids": [feedback_id],
            "first_feedback_event_id": feedback_id, "customer_id": scored.customer_id,
            "thread_id": scored.thread_id, "channel": scored.channel,
            "csm_id": route(account, self.settings.fallback_csm_id), "priority": prio, "status": "open",
            "needs": [n.need for n in scored.needs], "event_count": 1, "earlier_cases": earlier,
            "recommended_channel": recommended_channel(scored, account, self.policy),
            "internal_target": internal_target, "promised_by": promised_by, "escalated_at": None,
            "breached_at": None, "paged": not cooling, "latest": latest, "first": latest,
            "feedback_ingested_at": scored.ingested_at, "created_at": now, "updated_at": now,
            "trace_id": scored.trace_id,
        }
        if account is not None and account.erased_at is not None:
            # A case after an erasure: an item from before it, arriving late, must not join this case.
            case["customer_erased_at"] = account.erased_at
        if self.repo.insert_case(case):
            self.metrics.raised.labels(priority=prio).inc()
            logger.info("alert_raised alert_id=%s event_id=%s priority=%s csm=%s paged=%s trace_id=%s",
                        alert_id, feedback_id, prio, case["csm_id"], case["paged"], scored.trace_id)
        if case["paged"]:
            self._enqueue_pages(case, scored, account)
            if scored.customer_id:
                self.repo.record_page(scored.customer_id, now)
        event = alert_event(case, "raised", cause=feedback_id, trace_id=scored.trace_id)
        self._enqueue_webhook(event, case)
        return [event]

    def _skip_erased(self, scored: FeedbackScored) -> list[AlertEvent]:
        self.metrics.erased_skipped.inc()
        logger.info("erased_customer_item_dropped event_id=%s trace_id=%s", scored.feedback_event_id,
                    scored.trace_id)
        return []

    def _enqueue_pages(self, case: dict[str, Any], scored: FeedbackScored, account: Account | None) -> None:
        csm = self.repo.get_csm(case["csm_id"])
        urls: list[str] = list(csm.get("notify", [])) if csm else []
        if not urls and case["csm_id"] == self.settings.fallback_csm_id:
            urls = list(self.settings.fallback_notify)
        if not urls:
            logger.warning("no_notify_urls alert_id=%s csm=%s", case["_id"], case["csm_id"])
            return
        title, body = notification_text(
            scored, priority_=case["priority"], account=account, alert_id=case["_id"],
            inbox_url=self.settings.inbox_url, channel=case["recommended_channel"],
            promised_by=case["promised_by"], earlier_cases=case.get("earlier_cases", 0),
        )
        self.enqueue_pages(case, urls, title, body)

    def enqueue_pages(self, case: dict[str, Any], urls: list[str], title: str, body: str, *, cause: str = "") -> None:
        for url in urls:
            self._enqueue(str(derived_id("delivery", case["_id"], url, cause)),
                          {"kind": "apprise", "alert_id": case["_id"], "url": url, "title": title, "body": body,
                           "feedback_ingested_at": case.get("feedback_ingested_at")})

    def _enqueue(self, delivery_id: str, doc: dict[str, Any]) -> None:
        lease = timedelta(seconds=self.settings.delivery_lease_s) if self.handoff else None
        added = self.repo.enqueue(delivery_id, doc, self.clock(), claim_for=lease)
        if added is not None and self.handoff is not None:
            self.handoff(added)

    def _enqueue_webhook(self, event: AlertEvent, case: dict[str, Any]) -> None:
        if not self.settings.webhook_url:
            return
        self._enqueue(str(derived_id("webhook", event.event_id)),
                      {"kind": "webhook", "alert_id": case["_id"], "url": self.settings.webhook_url,
                       "msg_id": str(event.event_id), "payload": ALERT_EVENTS.encode(event).decode()})

    def announce(self, case: dict[str, Any], cause: str) -> AlertEvent:
        """An update of ``case`` (status change, escalation, breach) for the topic and the webhook."""
        event = alert_event(case, "updated", cause=cause)
        self._enqueue_webhook(event, case)
        return event

    # ---- crisis ----------------------------------------------------------------------------------
    def _spike(self, scored: FeedbackScored) -> list[AlertEvent]:
        """One crisis alert when negative public items in the window pass the threshold (seed 002)."""
        window = timedelta(minutes=self.policy.spike.window_minutes)
        now = self.clock()
        bucket = int(now.timestamp() // window.total_seconds())
        crisis_id = str(derived_id("crisis", bucket))
        if crisis_id == self._crisis_raised:
            # This window's crisis is out: record the item for later windows, skip the count and the
            # insert that would fail (in a crisis, every negative public item paid for both).
            self.repo.record_public_negative(str(scored.feedback_event_id), now)
            return []
        count = self.repo.count_public_negatives(str(scored.feedback_event_id), now, window)
        if count <= self.policy.spike.threshold:
            return []
        crisis: dict[str, Any] = {
            "_id": crisis_id, "kind": "crisis", "feedback_event_ids": [f"crisis:{bucket}"], "customer_id": None,
            "csm_id": self.settings.fallback_csm_id, "priority": "critical", "status": "open", "needs": [],
            "event_count": count, "paged": True, "created_at": now, "updated_at": now,
            "latest": {"text": f"{count} negative public items in {self.policy.spike.window_minutes:g} minutes; "
                               f"latest on {scored.source}: {scored.text[:200]}", "source": scored.source},
            "recommended_channel": "social_reply", "internal_target": None, "promised_by": None,
        }
        inserted = self.repo.insert_case(crisis)
        self._crisis_raised = crisis_id  # only the current window's matters
        if not inserted:
            return []
        self.metrics.raised.labels(priority="critical").inc()
        logger.warning("crisis_alert alert_id=%s count=%d window_min=%s", crisis_id, count,
                       self.policy.spike.window_minutes)
        urls = list(self.settings.manager_notify) or list(self.settings.fallback_notify)
        fallback = self.repo.get_csm(self.settings.fallback_csm_id)
        urls += list(fallback.get("notify", [])) if fallback else []
        title = f"[critical] Crisis: {count} negative public posts in {self.policy.spike.window_minutes:g} minutes"
        body = crisis["latest"]["text"] + f"\nCase {crisis_id}: {self.settings.inbox_url}"
        self.enqueue_pages(crisis, sorted(set(urls)), title, body)
        event = alert_event(crisis, "raised", cause="crisis")
        self._enqueue_webhook(event, crisis)
        return [event]


def register_agents(app: faust.App, handler: AlertHandler, metrics: AlertsMetrics,
                    on_enqueued: Callable[[], None] = lambda: None) -> None:
    """``on_enqueued`` runs (in the event loop) after each batch of scored items, which may have put
    deliveries in the outbox."""
    sink = EventSink(app, ALERT_EVENTS)

    def handle_all(batch: list[FeedbackScored]) -> list[AlertEvent]:
        return [event for scored in batch for event in handler.handle(scored)]

    async def on_scored(batch: list[FeedbackScored]) -> None:
        # In order, then one wait for the broker: waiting per item capped the agent below the rate
        # make bench offers at half capacity, and the queue behind it was most of feedback_to_alert.
        events = await asyncio.to_thread(handle_all, batch)
        on_enqueued()
        await sink.send_all(events)

    async def on_points(event: Any) -> None:
        if event.event_type == "tier.changed":
            kept = await asyncio.to_thread(handler.repo.set_tier, event.customer_id, event.tier, event.ingested_at)
            if not kept:
                logger.info("erased_customer_tier_dropped event_id=%s", event.event_id)

    async def on_erasure(request: CustomerErasureRequested) -> None:
        erased = await asyncio.to_thread(handler.repo.erase_customer, request.customer_id, utcnow(),
                                         request.ingested_at)
        logger.info("customer_erased event_id=%s cases=%d accounts=%d", request.event_id, erased["cases"],
                    erased["accounts"])

    register_batch_agent(app, FEEDBACK_SCORED, "alerts.handle_scored", on_scored, metrics.dlq)
    register_agent(app, LOYALTY_POINTS, "alerts.tiers", on_points, metrics.dlq)
    register_agent(app, CUSTOMER_ERASURE, "alerts.erase_customer", on_erasure, metrics.dlq)
