"""What ingest does with one accepted item: normalise, claim, publish, confirm."""

from __future__ import annotations

import logging
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

from pymongo.errors import PyMongoError

from feedback_shared.errors import DependencyUnavailable
from feedback_shared.events import Event
from feedback_shared.pii import mask_card_numbers
from feedback_shared.topics import TopicSpec
from ingest.metrics import IngestMetrics
from ingest.publisher import EventPublisher
from ingest.repository import AcceptedRepository

logger = logging.getLogger(__name__)


def normalise_text(text: str) -> tuple[str, str | None]:
    """NFC-normalise and mask card numbers; return the text and the original if NFC changed it.

    Card numbers are masked in both, since neither may be published.
    """
    masked = mask_card_numbers(text)
    nfc = unicodedata.normalize("NFC", masked)
    return nfc, (masked if nfc != masked else None)


@dataclass(frozen=True)
class Outcome:
    event_id: uuid.UUID
    duplicate: bool


class IngestService:
    def __init__(self, repo: AcceptedRepository, publisher: EventPublisher, metrics: IngestMetrics) -> None:
        self.repo = repo
        self.publisher = publisher
        self.metrics = metrics

    def accept(
        self, spec: TopicSpec[Any], event: Event, *, source: str, external_id: str, kind: str
    ) -> Outcome:
        """Publish ``event`` once per ``(source, external_id)``.

        Returns the first ``event_id`` with ``duplicate=True`` for a repeat that was already published.

        Raises:
            DependencyUnavailable: the database or the broker is down; nothing was acknowledged, and a
                retry with the same ``(source, external_id)`` reuses the same ``event_id``.
        """
        try:
            claim = self.repo.claim(source, external_id, event.event_id, kind)
        except PyMongoError as exc:
            self.metrics.rejected.labels(reason="database_unavailable").inc()
            raise DependencyUnavailable(f"database unreachable: {type(exc).__name__}") from exc
        if claim.status == "published":
            self.metrics.duplicates.labels(kind=kind).inc()
            return Outcome(claim.event_id, duplicate=True)
        if claim.event_id != event.event_id:
            event = event.model_copy(update={"event_id": claim.event_id})
        try:
            seconds = self.publisher.publish(spec, event)
        except DependencyUnavailable:
            self.metrics.rejected.labels(reason="broker_unavailable").inc()
            raise
        self.metrics.publish_seconds.observe(seconds)
        try:
            self.repo.mark_published(source, external_id)
        except PyMongoError:
            # The event is durably in Kafka; a retry would republish it under the same event_id, which
            # every consumer de-duplicates. So this is worth a log line, not a failed request.
            logger.warning("mark_published_failed event_id=%s", event.event_id)
        self.metrics.ingested.labels(source=self.metrics.source_label(source), kind=kind).inc()
        logger.info("accepted event_id=%s kind=%s topic=%s trace_id=%s",
                    event.event_id, kind, spec.name, event.trace_id)
        return Outcome(event.event_id, duplicate=False)
