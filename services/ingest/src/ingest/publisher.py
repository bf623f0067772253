"""Hands events to Kafka and waits for the broker's acknowledgement (acks=all)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from feedback_shared.config import KafkaSettings
from feedback_shared.errors import DependencyUnavailable
from feedback_shared.events import Event
from feedback_shared.kafka import create_producer
from feedback_shared.logs import event_fields
from feedback_shared.topics import TopicSpec

logger = logging.getLogger(__name__)


class EventPublisher(Protocol):
    def publish_many(
        self, messages: Sequence[tuple[TopicSpec[Any], Event]]
    ) -> list[float | DependencyUnavailable]: ...


class Publisher:
    """A kafka-python producer, created on first use and re-created after the broker comes back."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _get_producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                try:
                    self._producer = create_producer(self.settings)
                except KafkaError as exc:  # NoBrokersAvailable and friends
                    raise DependencyUnavailable(f"broker unreachable: {type(exc).__name__}") from exc
            return self._producer

    def publish_many(
        self, messages: Sequence[tuple[TopicSpec[Any], Event]]
    ) -> list[float | DependencyUnavailable]:
        """Send every message, then wait for each acknowledgement.

        Returns, per message, the seconds until the broker acknowledged it, or the error: a message
        the broker did not acknowledge within ``publish_timeout_s`` was not accepted.
        """
        try:
            producer = self._get_producer()
        except DependencyUnavailable as exc:
            return [exc] * len(messages)
        started = time.perf_counter()
        futures: list[Any] = []
        for spec, event in messages:
            try:
                futures.append(producer.send(
                    spec.name,
                    value=spec.encode(event),
                    key=spec.key(event),
                    headers=[("event_type", str(getattr(event, "event_type", "")).encode()),
                             ("trace_id", event.trace_id.encode())],
                ))
            except KafkaError as exc:
                futures.append(exc)
        results: list[float | DependencyUnavailable] = []
        deadline = started + self.settings.publish_timeout_s
        for (spec, event), future in zip(messages, futures, strict=True):
            try:
                if isinstance(future, Exception):
                    raise future
                future.get(timeout=max(0.1, deadline - time.perf_counter()))
                results.append(time.perf_counter() - started)
            except KafkaError as exc:
                logger.warning("publish_failed", extra={"topic": spec.name, **event_fields(event),
                                                        "error": type(exc).__name__})
                results.append(DependencyUnavailable(f"broker did not acknowledge: {type(exc).__name__}"))
        return results

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None
