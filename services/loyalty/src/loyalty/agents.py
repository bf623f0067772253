"""The stream side: commerce events, scored feedback, profiles and erasures in; ledger entries,
``loyalty.points.v1`` and ``customer.notifications.v1`` out."""

from __future__ import annotations

import asyncio
import logging

import faust

from feedback_shared.events import (
    CustomerErasureRequested,
    CustomerProfileUpdated,
    FeedbackScored,
    OrderReturned,
    PurchaseRecorded,
)
from feedback_shared.kafka import EventSink, register_agent, register_batch_agent
from feedback_shared.topics import (
    COMMERCE_EVENTS,
    CUSTOMER_ERASURE,
    CUSTOMER_NOTIFICATIONS,
    CUSTOMER_PROFILES,
    FEEDBACK_SCORED,
    LOYALTY_POINTS,
)
from loyalty.metrics import LoyaltyMetrics
from loyalty.service import Effects, LoyaltyService

logger = logging.getLogger(__name__)


class Publisher:
    def __init__(self, app: faust.App) -> None:
        self.points = EventSink(app, LOYALTY_POINTS)
        self.notifications = EventSink(app, CUSTOMER_NOTIFICATIONS)

    async def publish(self, effects: Effects) -> None:
        await self.points.send_all(effects.points)
        await self.notifications.send_all(effects.notifications)


def register_agents(
    app: faust.App, service: LoyaltyService, metrics: LoyaltyMetrics, publisher: Publisher
) -> None:
    # A whole batch at a time, in partition order (bulk reads, one transaction), then one wait for the
    # broker for all its effects.
    async def on_commerce(batch: list[PurchaseRecorded | OrderReturned]) -> None:
        await publisher.publish(await asyncio.to_thread(service.handle_batch, batch))

    async def on_scored(batch: list[FeedbackScored]) -> None:
        await publisher.publish(await asyncio.to_thread(service.handle_batch, batch))

    async def on_profile(event: CustomerProfileUpdated) -> None:
        await asyncio.to_thread(service.on_profile, event)

    async def on_erasure(request: CustomerErasureRequested) -> None:
        entries = await asyncio.to_thread(
            service.anonymise_customer, request.customer_id, request.ingested_at
        )
        logger.info("customer_anonymised", extra={"event_id": str(request.event_id), "ledger_entries": entries})

    register_batch_agent(
        app, COMMERCE_EVENTS, "loyalty.handle_commerce", on_commerce, metrics.dlq, stalls=metrics.stalls
    )
    register_batch_agent(
        app, FEEDBACK_SCORED, "loyalty.review_bonus", on_scored, metrics.dlq, stalls=metrics.stalls
    )
    register_agent(app, CUSTOMER_PROFILES, "loyalty.profiles", on_profile, metrics.dlq, stalls=metrics.stalls)
    register_agent(
        app, CUSTOMER_ERASURE, "loyalty.anonymise_customer", on_erasure, metrics.dlq, stalls=metrics.stalls
    )
