"""The stream side: ``feedback.received.v1`` in, ``feedback.scored.v1`` out, in batches; suggestions
also to ``product.suggestions.v1`` (SEN-7)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import faust

from feedback_shared.events import (
    CustomerErasureRequested,
    FeedbackReceived,
    FeedbackScored,
    derived_id,
    utcnow,
)
from feedback_shared.kafka import EventSink, PublishTurns, register_agent, register_batch_agent
from feedback_shared.topics import CUSTOMER_ERASURE, FEEDBACK_RECEIVED, FEEDBACK_SCORED, PRODUCT_SUGGESTIONS
from sentiment.config import Settings
from sentiment.metrics import SentimentMetrics
from sentiment.model import Scored, SentimentModel
from sentiment.scoring import feedback_type


def scored_event(received: FeedbackReceived, result: Scored, model_version: str) -> FeedbackScored:
    """The scored event. Its id is derived from the input and the model, so a redelivered input
    produces the same id, and re-scoring with a new model produces a new one."""
    fields = received.model_dump(exclude={"event_id", "event_type", "language", "ingested_at"})
    return FeedbackScored(
        **fields,
        event_id=derived_id("scored", received.event_id, model_version),
        ingested_at=received.ingested_at,
        feedback_event_id=received.event_id,
        model_version=model_version,
        feedback_type=feedback_type(received.text, result.sentiment.label, received.kind),
        **result.as_fields(),
    )


def is_suggestion(event: FeedbackScored) -> bool:
    """Whether the product team gets ``event`` too: sent as a suggestion, or read as one (SEN-7)."""
    return event.kind == "suggestion" or event.feedback_type == "suggestion"


def register_agents(
    app: faust.App, settings: Settings, model: SentimentModel, metrics: SentimentMetrics
) -> None:
    # One scoring thread per batch in flight: one batch's Python work overlaps the other's encoder runs.
    executor = ThreadPoolExecutor(max_workers=settings.batches_in_flight, thread_name_prefix="embed")
    sink = EventSink(app, FEEDBACK_SCORED)
    suggestion_sink = EventSink(app, PRODUCT_SUGGESTIONS)
    # With batches in flight, the next batch is scored while this one waits for the broker; the turns
    # keep the scored events in the order the batches were taken.
    turns = PublishTurns()

    async def score_batch(batch: list[FeedbackReceived]) -> None:
        loop = asyncio.get_running_loop()
        texts = [item.text for item in batch]
        languages = [item.language for item in batch]
        turn = turns.take()
        try:
            results = await loop.run_in_executor(executor, model.score, texts, languages)
            events = [
                scored_event(item, result, model.version) for item, result in zip(batch, results, strict=True)
            ]
            suggestions = [event for event in events if is_suggestion(event)]
            await turn.ready()
            sent = [*await sink.enqueue(events), *await suggestion_sink.enqueue(suggestions)]
        finally:
            turn.done()
        # Both acknowledged before the input's offsets are: a crash between them republishes both,
        # under the same event ids.
        await asyncio.gather(*sent)
        now = utcnow()
        metrics.batch_size.observe(len(events))
        for event in events:
            label = event.sentiment.label
            metrics.scored.labels(language=metrics.language_label(event.language), label=label).inc()
            for need in event.needs:
                # Each need by its own polarity: "great food, awful prices" counts price as negative.
                metrics.needs.labels(need=need.need, label=need.sentiment).inc()
            metrics.feedback_to_score.observe(max(0.0, (now - event.ingested_at).total_seconds()))
        for event in suggestions:
            metrics.suggestions.labels(kind=event.kind).inc()

    register_batch_agent(
        app,
        FEEDBACK_RECEIVED,
        "sentiment.score_feedback",
        score_batch,
        metrics.dlq,
        stalls=metrics.stalls,
        batch_size=settings.batch_size,
        within_s=settings.batch_wait_s,
        in_flight=settings.batches_in_flight,
    )

    async def forget(_: CustomerErasureRequested) -> None:
        # The cache is keyed by a hash of the text and holds no customer id, so an erased customer's
        # entries cannot be told apart: erasure (rare) empties it, and scoring fills it again.
        model.cache.clear()

    register_agent(app, CUSTOMER_ERASURE, "sentiment.forget_customer", forget, metrics.dlq, stalls=metrics.stalls)
