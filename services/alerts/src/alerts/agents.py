"""The stream side: ``feedback.scored.v1`` in; cases, outbox deliveries and ``alerts.events.v1`` out."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from alerts.config import Settings
from alerts.metrics import AlertsMetrics
from alerts.repository import AlertsRepository
from alerts.rules import notification_text, priority, route, should_alert
from feedback_shared.events import (
    AlertRaised,
    AlertUpdated,
    CustomerErasureRequested,
    FeedbackScored,
    derived_id,
    utcnow,
)
from feedback_shared.kafka import EventSink, MessageProcessor, faust_topic
from feedback_shared.topics import ALERT_EVENTS, CUSTOMER_ERASURE, FEEDBACK_SCORED

logger = logging.getLogger(__name__)


def _latest(scored: FeedbackScored) -> dict[str, Any]:
    return {
        "feedback_event_id": str(scored.feedback_event_id), "text": scored.text, "language": scored.language,
        "source": scored.source, "kind": scored.kind, "url": scored.url, "rating": scored.rating,
        "sentiment": scored.sentiment.model_dump(), "needs": [n.model_dump() for n in scored.needs],
        "anger": scored.anger, "urgency": scored.urgency, "occurred_at": scored.occurred_at,
    }


class AlertHandler:
    """Turns one scored item into a new case (paged) or an update of the customer's open case."""

    def __init__(self, repo: AlertsRepository, settings: Settings, metrics: AlertsMetrics) -> None:
        self.repo = repo
        self.settings = settings
        self.metrics = metrics

    def handle(self, scored: FeedbackScored) -> AlertRaised | AlertUpdated | None:
        if not should_alert(scored):
            return None
        feedback_id = str(scored.feedback_event_id)
        alert_id = str(derived_id("alert", feedback_id))
        now = utcnow()
        existing = self.repo.case_with_event(feedback_id)
        if existing is not None:
            if existing["_id"] == alert_id:
                # Redelivery of the event that opened this case: make sure its pages are queued.
                self._enqueue_pages(existing, scored)
            return None
        account = self.repo.get_account(scored.customer_id)
        if scored.customer_id:
            open_case = self.repo.open_case_for(scored.customer_id)
            if open_case is not None:
                # Cases, not pages: more negatives while a case is open update it without paging again.
                self.repo.add_event_to_case(open_case["_id"], feedback_id, _latest(scored), now)
                self.metrics.case_updates.inc()
                return AlertUpdated(
                    alert_id=open_case["_id"], feedback_event_id=scored.feedback_event_id,
                    customer_id=scored.customer_id, csm_id=open_case.get("csm_id"),
                    priority=open_case["priority"], status=open_case["status"],
                    needs=open_case.get("needs", []), event_count=open_case.get("event_count", 1) + 1,
                    event_id=derived_id("alert-updated", open_case["_id"], feedback_id), trace_id=scored.trace_id,
                )
        earlier = self.repo.count_cases_for(scored.customer_id) if scored.customer_id else 0
        prio = priority(scored, tier=account.tier if account else None, earlier_cases=earlier)
        csm_id = route(account, self.settings.fallback_csm_id)
        needs: list[str] = [n.need for n in scored.needs]
        case: dict[str, Any] = {
            "_id": alert_id, "feedback_event_ids": [feedback_id], "customer_id": scored.customer_id,
            "csm_id": csm_id, "priority": prio, "status": "open", "needs": needs,
            "event_count": 1, "latest": _latest(scored), "first": _latest(scored),
            "feedback_ingested_at": scored.ingested_at, "created_at": now, "updated_at": now,
            "trace_id": scored.trace_id,
        }
        if self.repo.insert_case(case):
            self.metrics.raised.labels(priority=prio).inc()
            logger.info("alert_raised alert_id=%s event_id=%s priority=%s csm=%s trace_id=%s",
                        alert_id, feedback_id, prio, csm_id, scored.trace_id)
        self._enqueue_pages(case, scored)
        return AlertRaised(
            alert_id=alert_id, feedback_event_id=scored.feedback_event_id, customer_id=scored.customer_id,
            csm_id=csm_id, priority=prio, status="open", needs=needs,
            event_id=derived_id("alert-raised", alert_id), trace_id=scored.trace_id,
        )

    def _enqueue_pages(self, case: dict[str, Any], scored: FeedbackScored) -> None:
        csm = self.repo.get_csm(case["csm_id"])
        urls: list[str] = list(csm.get("notify", [])) if csm else []
        if not urls and case["csm_id"] == self.settings.fallback_csm_id:
            urls = list(self.settings.fallback_notify)
        if not urls:
            logger.warning("no_notify_urls alert_id=%s csm=%s", case["_id"], case["csm_id"])
            return
        account = self.repo.get_account(scored.customer_id)
        title, body = notification_text(
            scored, priority_=case["priority"], account=account, alert_id=case["_id"],
            inbox_url=self.settings.inbox_url,
        )
        now = utcnow()
        for url in urls:
            self.repo.enqueue(
                str(derived_id("delivery", case["_id"], url)),
                {"alert_id": case["_id"], "url": url, "title": title, "body": body,
                 "feedback_ingested_at": case["feedback_ingested_at"]},
                now,
            )


def register_agents(app: faust.App, handler: AlertHandler, metrics: AlertsMetrics) -> None:
    sink = EventSink(app, ALERT_EVENTS)

    async def erase(request: CustomerErasureRequested) -> None:
        erased = await asyncio.to_thread(handler.repo.erase_customer, request.customer_id, utcnow())
        logger.info("customer_erased event_id=%s cases=%d accounts=%d", request.event_id, erased["cases"],
                    erased["accounts"])

    erasure = MessageProcessor(
        app, CUSTOMER_ERASURE, erase, on_dead_letter=lambda topic: metrics.dlq.labels(topic=topic).inc()
    )
    app.agent(faust_topic(app, CUSTOMER_ERASURE.name), name="alerts.erase_customer")(erasure.run)

    async def handle(scored: FeedbackScored) -> None:
        outcome = await asyncio.to_thread(handler.handle, scored)
        if outcome is not None:
            await sink.send_all([outcome])

    processor = MessageProcessor(
        app, FEEDBACK_SCORED, handle, on_dead_letter=lambda topic: metrics.dlq.labels(topic=topic).inc()
    )
    app.agent(faust_topic(app, FEEDBACK_SCORED.name), name="alerts.handle_scored")(processor.run)
