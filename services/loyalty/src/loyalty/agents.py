"""The stream side: ``commerce.events.v1`` in; ledger entries and ``loyalty.points.v1`` out."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import faust

from feedback_shared.events import (
    CustomerErasureRequested,
    OrderReturned,
    PointsAwarded,
    PointsReversed,
    PurchaseRecorded,
    derived_id,
    utcnow,
)
from feedback_shared.kafka import EventSink, MessageProcessor, faust_topic
from feedback_shared.topics import COMMERCE_EVENTS, CUSTOMER_ERASURE, LOYALTY_POINTS
from loyalty.metrics import LoyaltyMetrics
from loyalty.points import Credit, PointsRules, purchase_credits, return_reversal, tier_for
from loyalty.repository import LoyaltyRepository

logger = logging.getLogger(__name__)


class LoyaltyHandler:
    def __init__(self, repo: LoyaltyRepository, rules: PointsRules, metrics: LoyaltyMetrics) -> None:
        self.repo = repo
        self.rules = rules
        self.metrics = metrics

    def handle(self, event: PurchaseRecorded | OrderReturned) -> list[PointsAwarded | PointsReversed]:
        """Apply the rules to one commerce event. Idempotent: a redelivery credits nothing new, and
        re-announces the same entries under the same event ids."""
        if isinstance(event, PurchaseRecorded):
            ordinal = self.repo.record_purchase(event.order_id, event.customer_id, {
                "amount": str(event.amount), "currency": event.currency, "event_id": str(event.event_id),
                "occurred_at": event.occurred_at,
            })
            self.metrics.purchases.labels(kind="first" if ordinal == 1 else "repeat").inc()
            credits = purchase_credits(ordinal, event.amount, self.rules)
        else:
            credits = return_reversal(self.repo.order_points(event.order_id))
        out: list[PointsAwarded | PointsReversed] = []
        for credit in credits:
            out.append(self._write(event, credit))
        return out

    def _write(self, event: PurchaseRecorded | OrderReturned, credit: Credit) -> PointsAwarded | PointsReversed:
        entry_id = str(derived_id("ledger", event.event_id, credit.rule))
        created = self.repo.append({
            "_id": entry_id, "customer_id": event.customer_id, "source_event_id": str(event.event_id),
            "rule": credit.rule, "points": credit.points, "order_id": event.order_id, "created_at": utcnow(),
        })
        if created:
            self.metrics.points.labels(rule=credit.rule).inc(abs(credit.points))
            logger.info("ledger_entry entry_id=%s event_id=%s rule=%s points=%d",
                        entry_id, event.event_id, credit.rule, credit.points)
        balance = self.repo.balance(event.customer_id)
        tier = tier_for(self.repo.earned(event.customer_id), self.rules)
        model = PointsAwarded if credit.points >= 0 else PointsReversed
        return model(
            event_id=derived_id("points-event", entry_id), trace_id=event.trace_id,
            customer_id=event.customer_id, entry_id=entry_id, rule=credit.rule, points=credit.points,
            source_event_id=event.event_id, balance=balance, tier=tier,
        )


def pseudonym(customer_id: str) -> str:
    """A stable stand-in for an erased customer: the same erasure twice gives the same pseudonym."""
    return "erased-" + hashlib.sha256(f"loyalty-erasure|{customer_id}".encode()).hexdigest()[:24]


def register_agents(app: faust.App, handler: LoyaltyHandler, metrics: LoyaltyMetrics) -> None:
    sink = EventSink(app, LOYALTY_POINTS)

    async def erase(request: CustomerErasureRequested) -> None:
        entries = await asyncio.to_thread(handler.repo.anonymise_customer, request.customer_id,
                                          pseudonym(request.customer_id))
        logger.info("customer_anonymised event_id=%s ledger_entries=%d", request.event_id, entries)

    erasure = MessageProcessor(
        app, CUSTOMER_ERASURE, erase, on_dead_letter=lambda topic: metrics.dlq.labels(topic=topic).inc()
    )
    app.agent(faust_topic(app, CUSTOMER_ERASURE.name), name="loyalty.anonymise_customer")(erasure.run)

    async def handle(event: Any) -> None:
        announcements = await asyncio.to_thread(handler.handle, event)
        await sink.send_all(announcements)

    processor = MessageProcessor(
        app, COMMERCE_EVENTS, handle, on_dead_letter=lambda topic: metrics.dlq.labels(topic=topic).inc()
    )
    app.agent(faust_topic(app, COMMERCE_EVENTS.name), name="loyalty.handle_commerce")(processor.run)
