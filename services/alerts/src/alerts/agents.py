"""The stream side: scored feedback in (a batch at a time); cases, outbox deliveries and
``alerts.events.v1`` out. Also keeps alerts' own view of loyalty tiers, the insights read model (scored
items and text-less survey answers), and acts on erasure requests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import faust

from alerts.decide import AlertEvent
from alerts.insights import item_of_scored, item_of_survey
from alerts.metrics import AlertsMetrics
from alerts.service import AlertService
from feedback_shared.events import (
    CustomerErasureRequested,
    CustomerThanked,
    FeedbackScored,
    FollowUpDue,
    OrderReturned,
    PurchaseRecorded,
    SurveyAnswered,
)
from feedback_shared.kafka import EventSink, register_agent, register_batch_agent
from feedback_shared.topics import (
    ALERT_EVENTS,
    COMMERCE_EVENTS,
    CUSTOMER_ERASURE,
    CUSTOMER_NOTIFICATIONS,
    FEEDBACK_SCORED,
    LOYALTY_POINTS,
    SURVEY_ANSWERS,
)

logger = logging.getLogger(__name__)

def register_agents(
    app: faust.App,
    service: AlertService,
    metrics: AlertsMetrics,
    on_enqueued: Callable[[], None] = lambda: None,
) -> None:
    """``on_enqueued`` runs (in the event loop) after each batch of scored items, which may have put
    deliveries in the outbox."""
    sink = EventSink(app, ALERT_EVENTS)

    async def on_scored(batch: list[FeedbackScored]) -> None:
        # The whole batch at once (bulk reads and writes), then one wait for the broker.
        events: list[AlertEvent] = await asyncio.to_thread(service.handle_batch, batch)
        on_enqueued()
        await sink.send_all(events)

    async def on_insight_items(batch: list[FeedbackScored]) -> None:
        await asyncio.to_thread(service.record_insights, [item_of_scored(s) for s in batch], "alerts.insights")

    async def on_survey_answers(batch: list[SurveyAnswered]) -> None:
        await asyncio.to_thread(service.record_insights, [item_of_survey(a) for a in batch], "alerts.insights_surveys")

    async def on_commerce(batch: list[PurchaseRecorded | OrderReturned]) -> None:
        await asyncio.to_thread(service.record_commerce, batch)

    async def on_points(batch: list[Any]) -> None:
        await asyncio.to_thread(service.record_points, batch)
        for event in batch:
            if event.event_type == "tier.changed":
                kept = await asyncio.to_thread(service.set_tier, event.customer_id, event.tier, event.ingested_at)
                if not kept:
                    logger.info("erased_customer_tier_dropped", extra={"event_id": str(event.event_id)})

    async def on_erasure(request: CustomerErasureRequested) -> None:
        erased = await asyncio.to_thread(service.erase_customer, request.customer_id, request.ingested_at)
        logger.info(
            "customer_erased cases=%d accounts=%d",
            erased["cases"],
            erased["accounts"],
            extra={"event_id": str(request.event_id), "trace_id": request.trace_id},
        )

    async def on_notifications(batch: list[CustomerThanked | FollowUpDue]) -> None:
        # A thank-you goes now; a follow-up is scheduled (the sweep sends it when due).
        await asyncio.to_thread(service.contacts.notifications, batch)
        on_enqueued()

    settings = service.settings
    register_batch_agent(app, FEEDBACK_SCORED, "alerts.handle_scored", on_scored, metrics.dlq, stalls=metrics.stalls,
                         batch_size=settings.scored_batch_size, within_s=settings.scored_batch_wait_s)
    # The insights read model: its own consumers, so a slow aggregate write never holds up a case. A
    # report can be a few seconds behind; in a burst, those seconds' items written in one transaction
    # cost the database a few commands in all instead of a few per item.
    insights_wait_s = settings.insights_batch_wait_s
    register_batch_agent(app, FEEDBACK_SCORED, "alerts.insights", on_insight_items, metrics.dlq,
                         stalls=metrics.stalls, batch_size=500, within_s=insights_wait_s)
    register_batch_agent(app, SURVEY_ANSWERS, "alerts.insights_surveys", on_survey_answers, metrics.dlq,
                         stalls=metrics.stalls, batch_size=500, within_s=insights_wait_s)
    register_batch_agent(app, LOYALTY_POINTS, "alerts.tiers", on_points, metrics.dlq, stalls=metrics.stalls)
    # Purchases and returns, for the customer's timeline on the case page.
    register_batch_agent(app, COMMERCE_EVENTS, "alerts.timeline_commerce", on_commerce, metrics.dlq,
                         stalls=metrics.stalls)
    register_agent(
        app, CUSTOMER_ERASURE, "alerts.erase_customer", on_erasure, metrics.dlq, stalls=metrics.stalls
    )
    register_batch_agent(app, CUSTOMER_NOTIFICATIONS, "alerts.customer_contact", on_notifications, metrics.dlq,
                         stalls=metrics.stalls)
