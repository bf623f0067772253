"""Hands events to Kafka and waits for the broker's acknowledgement (acks=all)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from feedback_shared.config import KafkaSettings
from feedback_shared.errors import DependencyUnavailable
from feedback_shared.events import Event
from feedback_shared.kafka import create_producer
from feedback_shared.topics import TopicSpec

logger = logging.getLogger(__name__)


class EventPublisher(Protocol):
    def publish(self, spec: TopicSpec[Any], event: Event) -> float: ...


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
                    raise DependencyUnavailable(f"broker unreachable: {exc}") from exc
            return self._producer

    def publish(self, spec: TopicSpec[Any], event: Event) -> float:
        """Send and wait for the acknowledgement; return the seconds it took.

        Raises:
            DependencyUnavailable: the broker did not acknowledge in ``publish_timeout_s``.
        """
        producer = self._get_producer()
        started = time.perf_counter()
        try:
            future = producer.send(
                spec.name,
                value=spec.encode(event),
                key=spec.key(event),
                headers=[("event_type", getattr(event, "event_type", "").encode()),
                         ("trace_id", event.trace_id.encode())],
            )
            future.get(timeout=self.settings.publish_timeout_s)
        except KafkaError as exc:
            logger.warning("publish_failed topic=%s event_id=%s error=%r", spec.name, event.event_id, exc)
            raise DependencyUnavailable(f"broker did not acknowledge: {type(exc).__name__}") from exc
        return time.perf_counter() - started

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None
