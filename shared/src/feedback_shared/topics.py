"""The one typed registry of topics. No topic name string appears anywhere else.

Every topic has a dead-letter twin ``<name>.dlq``: a message that cannot be decoded goes there with
its original bytes, and the reason in the headers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from feedback_shared.errors import DecodeError
from feedback_shared.events import (
    AlertEvent,
    CommerceEvent,
    CustomerErasureRequested,
    CustomerNotification,
    CustomerProfileUpdated,
    Event,
    FeedbackReceived,
    FeedbackScored,
    PointsEvent,
    SurveyAnswered,
)

M = TypeVar("M")

#: Header names on dead-lettered messages.
DLQ_ERROR_HEADER = "x-dlq-error"
DLQ_SOURCE_TOPIC_HEADER = "x-dlq-source-topic"
DLQ_SOURCE_OFFSET_HEADER = "x-dlq-source-offset"
#: Which consumer (agent) dead-lettered the message: a topic with two consumers can dead-letter it twice.
DLQ_CONSUMER_HEADER = "x-dlq-consumer"


@dataclass(frozen=True)
class TopicSpec(Generic[M]):
    """A topic, the model of its messages, and how to encode, decode and key them."""

    name: str
    adapter: TypeAdapter[M] = field(repr=False, compare=False)
    partitions: int = 3

    @property
    def dlq_name(self) -> str:
        return f"{self.name}.dlq"

    def encode(self, event: M) -> bytes:
        return self.adapter.dump_json(event)

    def decode(self, raw: bytes | None) -> M:
        if raw is None:
            raise DecodeError(self.name, "empty message (no value)")
        try:
            return self.adapter.validate_json(raw)
        except ValidationError as exc:
            raise DecodeError(self.name, _describe(exc)) from exc

    @staticmethod
    def key(event: Event) -> bytes | None:
        key = event.partition_key()
        return key.encode("utf-8") if key else None


def _describe(exc: ValidationError) -> str:
    """A short, readable reason: which fields failed and why (no input values: they may hold PII)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:5]:
        # A bad dict key is in the loc, and a bad discriminator tag in the message: leave both out.
        path = err["loc"]
        loc = ".".join("<key>" if path[i + 1:i + 2] == ("[key]",) else str(p) for i, p in enumerate(path)) or "(message)"
        msg = err["msg"]
        if err["type"] == "union_tag_invalid":
            ctx = err.get("ctx", {})
            msg = f"{ctx.get('discriminator', 'tag')} must be one of {ctx.get('expected_tags', '?')}"
        parts.append(f"{loc}: {msg}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


FEEDBACK_RECEIVED: TopicSpec[FeedbackReceived] = TopicSpec(
    "feedback.received.v1", TypeAdapter(FeedbackReceived)
)
FEEDBACK_SCORED: TopicSpec[FeedbackScored] = TopicSpec("feedback.scored.v1", TypeAdapter(FeedbackScored))
COMMERCE_EVENTS: TopicSpec[Any] = TopicSpec("commerce.events.v1", TypeAdapter(CommerceEvent))
ALERT_EVENTS: TopicSpec[Any] = TopicSpec("alerts.events.v1", TypeAdapter(AlertEvent))
LOYALTY_POINTS: TopicSpec[Any] = TopicSpec("loyalty.points.v1", TypeAdapter(PointsEvent))
CUSTOMER_ERASURE: TopicSpec[CustomerErasureRequested] = TopicSpec(
    "customer.erasure.v1", TypeAdapter(CustomerErasureRequested)
)
CUSTOMER_PROFILES: TopicSpec[CustomerProfileUpdated] = TopicSpec(
    "customer.profiles.v1", TypeAdapter(CustomerProfileUpdated)
)
CUSTOMER_NOTIFICATIONS: TopicSpec[Any] = TopicSpec(
    "customer.notifications.v1", TypeAdapter(CustomerNotification)
)
#: Scored feedback that is a suggestion (kind ``suggestion``, or a text the sentiment stage classed as one):
#: for the product team (SEN-7). The same ``FeedbackScored`` as on ``feedback.scored.v1``.
PRODUCT_SUGGESTIONS: TopicSpec[FeedbackScored] = TopicSpec(
    "product.suggestions.v1", TypeAdapter(FeedbackScored)
)
#: Survey answers with scores and no text (see ``SurveyAnswered``).
SURVEY_ANSWERS: TopicSpec[SurveyAnswered] = TopicSpec("surveys.answered.v1", TypeAdapter(SurveyAnswered))

ALL_TOPICS: Sequence[TopicSpec[Any]] = (
    FEEDBACK_RECEIVED,
    FEEDBACK_SCORED,
    COMMERCE_EVENTS,
    ALERT_EVENTS,
    LOYALTY_POINTS,
    CUSTOMER_ERASURE,
    CUSTOMER_PROFILES,
    CUSTOMER_NOTIFICATIONS,
    PRODUCT_SUGGESTIONS,
    SURVEY_ANSWERS,
)


def all_topic_names() -> list[str]:
    """Every topic and its dead-letter twin, as created at start-up."""
    names: list[str] = []
    for spec in ALL_TOPICS:
        names += [spec.name, spec.dlq_name]
    return names


#: Where the published JSON Schemas live, one per topic (``feedbackctl schemas`` writes them).
SCHEMA_DIR = Path(__file__).with_name("schemas")


def json_schema(spec: TopicSpec[Any]) -> dict[str, Any]:
    """The JSON Schema of what ``spec``'s consumers accept: for producers outside the project. The
    ``event_type`` of each event is a ``const``, so a producer learns the exact value to send."""
    schema: dict[str, Any] = spec.adapter.json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{spec.name}.schema.json",
            "title": spec.name, "description": f"Messages on the Kafka topic {spec.name} (key: customer_id where "
            f"known). Messages that do not validate go to {spec.dlq_name} with the reason in the "
            f"{DLQ_ERROR_HEADER} header.", **schema}


def schema_documents() -> dict[str, str]:
    """Each topic's schema file name and text, as checked in under ``SCHEMA_DIR``."""
    return {f"{spec.name}.schema.json": json.dumps(json_schema(spec), indent=2, sort_keys=True) + "\n"
            for spec in ALL_TOPICS}


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_documents().items():
        (directory / name).write_text(text, encoding="utf-8")
        written.append(directory / name)
    return written
