"""What ingest does with accepted items: normalise, claim, publish, confirm."""

from __future__ import annotations

import logging
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.errors import PyMongoError

from feedback_shared.errors import DependencyUnavailable
from feedback_shared.events import Event
from feedback_shared.logs import event_fields
from feedback_shared.pii import mask_card_numbers
from feedback_shared.topics import TopicSpec
from ingest.metrics import IngestMetrics
from ingest.publisher import EventPublisher
from ingest.repository import AcceptedRepository, ClaimRequest

logger = logging.getLogger(__name__)


def normalise_text(text: str) -> tuple[str, str | None]:
    """NFC-normalise and mask card numbers; return the text and the original if NFC changed it.

    Card numbers are masked in both, since neither may be published.
    """
    masked = mask_card_numbers(text)
    nfc = unicodedata.normalize("NFC", masked)
    return nfc, (masked if nfc != masked else None)


@dataclass(frozen=True)
class Submission:
    """One item to publish once per ``(source, external_id)``."""

    spec: TopicSpec[Any]
    event: Event
    source: str
    external_id: str
    kind: str


@dataclass(frozen=True)
class Outcome:
    event_id: uuid.UUID
    duplicate: bool


class IngestService:
    def __init__(self, repo: AcceptedRepository, publisher: EventPublisher, metrics: IngestMetrics) -> None:
        self.repo = repo
        self.publisher = publisher
        self.metrics = metrics

    def accept(self, submission: Submission) -> Outcome:
        """Publish one item; see ``accept_many``.

        Raises:
            DependencyUnavailable: the database or the broker is down; nothing was acknowledged, and a
                retry with the same ``(source, external_id)`` reuses the same ``event_id``.
        """
        [result] = self.accept_many([submission])
        if isinstance(result, DependencyUnavailable):
            raise result
        return result

    def accept_many(self, submissions: Sequence[Submission]) -> list[Outcome | DependencyUnavailable]:
        """Publish each item once per ``(source, external_id)``, all sends in flight together.

        Per item: the first ``event_id`` with ``duplicate=True`` for a repeat already published; the new
        ``event_id`` once the broker acknowledged it; or ``DependencyUnavailable`` (not accepted).
        """
        results: list[Outcome | DependencyUnavailable | None] = [None] * len(submissions)
        first_in_batch: dict[tuple[str, str], int] = {}
        repeats: list[tuple[int, int]] = []
        unique: list[tuple[int, Submission]] = []
        for i, sub in enumerate(submissions):
            key = (sub.source, sub.external_id)
            if key in first_in_batch:
                repeats.append((i, first_in_batch[key]))
            else:
                first_in_batch[key] = i
                unique.append((i, sub))
        to_publish: list[tuple[int, Submission]] = []
        claimed = unique
        try:
            claims = self.repo.claim_many([
                ClaimRequest(s.source, s.external_id, s.event.event_id, s.kind, getattr(s.event, "customer_id", None))
                for _, s in unique
            ]) if unique else []
        except PyMongoError as exc:
            self.metrics.rejected.labels(reason="database_unavailable").inc(len(unique))
            error = DependencyUnavailable(f"database unreachable: {type(exc).__name__}")
            claims, claimed = [], []
            for i, _ in unique:
                results[i] = error
        for (i, sub), claim in zip(claimed, claims, strict=True):
            if claim.status == "published":
                self.metrics.duplicates.labels(kind=sub.kind).inc()
                results[i] = Outcome(claim.event_id, duplicate=True)
                continue
            if claim.event_id != sub.event.event_id:
                # An earlier attempt claimed this item but never got it acknowledged: reuse its id.
                sub = Submission(sub.spec, sub.event.model_copy(update={"event_id": claim.event_id}),
                                 sub.source, sub.external_id, sub.kind)
            to_publish.append((i, sub))
        published = self.publisher.publish_many([(sub.spec, sub.event) for _, sub in to_publish]) if to_publish else []
        acknowledged = [(i, sub) for (i, sub), result in zip(to_publish, published, strict=True)
                        if not isinstance(result, DependencyUnavailable)]
        try:
            if acknowledged:
                self.repo.mark_published_many([(sub.source, sub.external_id) for _, sub in acknowledged])
        except PyMongoError:
            # The events are durably in Kafka; a retry would republish them under the same event_ids,
            # which every consumer de-duplicates. Worth a log line, not a failed request.
            logger.warning("mark_published_failed", extra={"count": len(acknowledged)})
        for (i, sub), result in zip(to_publish, published, strict=True):
            if isinstance(result, DependencyUnavailable):
                self.metrics.rejected.labels(reason="broker_unavailable").inc()
                results[i] = result
                continue
            self.metrics.publish_seconds.observe(result)
            self.metrics.ingested.labels(source=self.metrics.source_label(sub.source), kind=sub.kind).inc()
            self.metrics.observe_accepted(sub.kind, sub.event)
            logger.info("accepted", extra={**event_fields(sub.event), "kind": sub.kind, "topic": sub.spec.name})
            results[i] = Outcome(sub.event.event_id, duplicate=False)
        for i, first in repeats:
            earlier = results[first]
            results[i] = Outcome(earlier.event_id, duplicate=True) if isinstance(earlier, Outcome) else earlier
            if isinstance(earlier, Outcome):
                self.metrics.duplicates.labels(kind=submissions[i].kind).inc()
        return [r for r in results if r is not None]
