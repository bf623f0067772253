"""Re-scoring history: read a time range of ``feedback.received.v1`` and publish fresh scores.

After a model change, ``feedbackctl replay --since …`` scores the range with the current model and
publishes ``feedback.scored.v1`` events whose ids derive from (input, model version): a new model gives
new ids, the same model the same ids, so every consumer stays idempotent (alerts never page twice for
one item; loyalty never credits a review twice).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tqdm import tqdm

from feedback_shared.config import KafkaSettings
from feedback_shared.errors import DecodeError
from feedback_shared.events import FeedbackReceived
from feedback_shared.kafka import client_security_options, create_producer
from feedback_shared.topics import FEEDBACK_RECEIVED, FEEDBACK_SCORED
from sentiment.agents import scored_event
from sentiment.model import SentimentModel


@dataclass
class ReplaySummary:
    read: int = 0
    scored: int = 0
    undecodable: int = 0
    model_version: str = ""


async def _read_range(kafka: KafkaSettings, since: datetime, until: datetime | None) -> list[Any]:
    """Every record of the input topic from ``since`` (inclusive) to ``until`` (exclusive), by direct
    partition assignment: no consumer group, so the live stage's offsets are untouched."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False,
                                **client_security_options(kafka))
    await consumer.start()
    try:
        partitions = [TopicPartition(FEEDBACK_RECEIVED.name, p)
                      for p in sorted(consumer.partitions_for_topic(FEEDBACK_RECEIVED.name) or [])]
        consumer.assign(partitions)
        starts = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
        ends = await consumer.end_offsets(partitions)
        wanted = {}
        for tp in partitions:
            start = starts.get(tp)
            if start is not None and start.offset < ends[tp]:
                consumer.seek(tp, start.offset)
                wanted[tp] = ends[tp]
        records: list[Any] = []
        until_ms = int(until.timestamp() * 1000) if until else None
        while wanted:
            batch = await consumer.getmany(*wanted, timeout_ms=1000)
            for tp, recs in batch.items():
                records += [r for r in recs if until_ms is None or r.timestamp < until_ms]
                if recs and recs[-1].offset + 1 >= wanted[tp]:
                    del wanted[tp]
            if not batch:
                for tp in list(wanted):
                    if await consumer.position(tp) >= wanted[tp]:
                        del wanted[tp]
        return records
    finally:
        await consumer.stop()


def replay(kafka: KafkaSettings, since: datetime, until: datetime | None = None, *, batch_size: int = 32,
           progress: bool = True, model: SentimentModel | None = None) -> ReplaySummary:
    records = asyncio.run(_read_range(kafka, since, until))
    model = model or SentimentModel()
    summary = ReplaySummary(read=len(records), model_version=model.version)
    items: list[FeedbackReceived] = []
    for record in records:
        try:
            items.append(FEEDBACK_RECEIVED.decode(record.value))
        except DecodeError:
            summary.undecodable += 1  # already in the dead-letter topic from the live stage
    producer = create_producer(kafka)
    try:
        with tqdm(total=len(items), desc="re-scoring", unit="text", disable=not progress) as bar:
            for start in range(0, len(items), batch_size):
                batch = items[start:start + batch_size]
                results = model.score([i.text for i in batch], [i.language for i in batch])
                futures = []
                for item, result in zip(batch, results, strict=True):
                    event = scored_event(item, result, model.version)
                    futures.append(producer.send(FEEDBACK_SCORED.name, value=FEEDBACK_SCORED.encode(event),
                                                 key=FEEDBACK_SCORED.key(event)))
                for future in futures:
                    future.get(timeout=kafka.publish_timeout_s)
                summary.scored += len(batch)
                bar.update(len(batch))
    finally:
        producer.close(timeout=10)
    return summary
