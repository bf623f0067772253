"""Fuzzing the Kafka decoders: every topic in the registry, every event model.

Properties:
- any bytes (or none) on a topic decode to one of the topic's event models, or raise ``DecodeError``
  naming the topic with a non-empty reason that does not echo input values; never anything else;
- a valid event with one field dropped, retyped, replaced by hostile JSON, a wrong schema version or an
  unknown event type is refused when it must be (a required field is missing, the version or type is
  wrong), and whatever is accepted is a valid event that round-trips;
- every valid event encodes and decodes back equal, with the same partition key;
- ``MessageProcessor`` hands each message either to the handler (decoded) or to the DLQ (original
  bytes, the reason in the headers), exactly once, and never raises.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import typing
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from feedback_shared import events as events_module
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
from feedback_shared.kafka import DLQ_MAX_VALUE_BYTES, DLQ_TRUNCATED_HEADER, MessageProcessor
from feedback_shared.topics import (
    ALERT_EVENTS,
    ALL_TOPICS,
    COMMERCE_EVENTS,
    CUSTOMER_ERASURE,
    CUSTOMER_NOTIFICATIONS,
    CUSTOMER_PROFILES,
    DLQ_CONSUMER_HEADER,
    DLQ_ERROR_HEADER,
    DLQ_SOURCE_OFFSET_HEADER,
    DLQ_SOURCE_TOPIC_HEADER,
    FEEDBACK_RECEIVED,
    FEEDBACK_SCORED,
    LOYALTY_POINTS,
    PRODUCT_SUGGESTIONS,
    SURVEY_ANSWERS,
    TopicSpec,
)
from tests.unit.fuzz.fuzzing import FUZZ, deeply_nested, dumps, events, json_values, mutated_bytes, tried


def _members(union: Any) -> tuple[type[Event], ...]:
    """The models of a discriminated union alias (``Annotated[A | B, Field(...)]``)."""
    return typing.get_args(typing.get_args(union)[0])


TOPIC_MODELS: dict[str, tuple[type[Event], ...]] = {
    FEEDBACK_RECEIVED.name: (FeedbackReceived,),
    FEEDBACK_SCORED.name: (FeedbackScored,),
    COMMERCE_EVENTS.name: _members(CommerceEvent),
    ALERT_EVENTS.name: _members(AlertEvent),
    LOYALTY_POINTS.name: _members(PointsEvent),
    CUSTOMER_ERASURE.name: (CustomerErasureRequested,),
    CUSTOMER_PROFILES.name: (CustomerProfileUpdated,),
    CUSTOMER_NOTIFICATIONS.name: _members(CustomerNotification),
    PRODUCT_SUGGESTIONS.name: (FeedbackScored,),
    SURVEY_ANSWERS.name: (SurveyAnswered,),
}
TOPICS = {spec.name: spec for spec in ALL_TOPICS}
#: (topic, model) for every event model on every topic.
PAIRS = [(TOPICS[topic], model) for topic, models in TOPIC_MODELS.items() for model in models]
pair_ids = [f"{spec.name}:{model.__name__}" for spec, model in PAIRS]
topics = pytest.mark.parametrize("spec", ALL_TOPICS, ids=[s.name for s in ALL_TOPICS])
pairs = pytest.mark.parametrize(("spec", "model"), PAIRS, ids=pair_ids)

DEFAULTED = {"event_id", "occurred_at", "ingested_at", "trace_id"}
#: Found in hostile values, so a reason that echoes input can be caught.
MARKER = "PII-7f3a9c-jane@example.com"


def test_every_topic_and_every_event_model_is_fuzzed() -> None:
    assert set(TOPIC_MODELS) == set(TOPICS)
    concrete = {m for _, m in inspect.getmembers(events_module, inspect.isclass)
                if issubclass(m, Event) and "event_type" in m.model_fields}
    assert concrete == {model for _, model in PAIRS}


def assert_decodes_or_refuses(spec: TopicSpec[Any], raw: bytes | None) -> Any:
    """The decoder's contract: a model of the topic, or ``DecodeError`` with a reason. Nothing else."""
    try:
        decoded = spec.decode(raw)
    except DecodeError as exc:
        assert exc.topic == spec.name
        assert exc.reason.strip(), "a refusal must say why"
        assert MARKER not in exc.reason, f"the reason echoes input values: {exc.reason}"
        exc.reason.encode("utf-8")  # it goes into a Kafka header
        return None
    assert isinstance(decoded, TOPIC_MODELS[spec.name])
    assert decoded.schema_version == 1
    assert spec.decode(spec.encode(decoded)) == decoded, "an accepted message must be a stable, valid event"
    return decoded


@topics
@given(raw=st.one_of(st.none(), st.binary(max_size=400), st.builds(dumps, json_values),
                     st.integers(1, 3000).map(deeply_nested)))
@FUZZ
def test_any_bytes_decode_or_are_refused_with_a_reason(spec: TopicSpec[Any], raw: bytes | None) -> None:
    tried(f"kafka.decode {spec.name}")
    assert_decodes_or_refuses(spec, raw)


EDGE_INSTANTS = ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00Z",
                 "9999-12-31T23:59:59.999999Z", "2026-01-01T00:00:00", "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z",
                 "2026-01-01T00:00:00+24:00", -(10**20), 10**20, 1e308, "NaN", "")


def _plant(value: Any) -> Any:
    if isinstance(value, dict):
        return {**{k: _plant(v) for k, v in value.items()}, MARKER: 0.5}
    if isinstance(value, list):
        return [_plant(v) for v in value]
    return value


def _mutate(draw: st.DrawFn, doc: dict[str, Any], model: type[BaseModel]) -> tuple[dict[str, Any], str, str]:
    field = draw(st.sampled_from(sorted(model.model_fields)))
    how = draw(st.sampled_from(["drop", "hostile", "retype", "schema_version", "event_type", "extra", "marker",
                                "marker_key", "instant"]))
    doc = dict(doc)
    if how == "drop":
        doc.pop(field, None)
    elif how == "hostile":
        doc[field] = draw(json_values)
    elif how == "retype":
        value = doc.get(field)
        doc[field] = draw(st.sampled_from([str(value), [value], {"v": value}, 1, 1.5, True, None]))
    elif how == "schema_version":
        field = "schema_version"
        doc[field] = draw(st.sampled_from([0, 2, "1", 1.5, -1, 10**30, None, "v1"]))
    elif how == "event_type":
        field = "event_type"
        doc[field] = draw(st.sampled_from([MARKER, "", None, 1, "feedback.received.v2", "FEEDBACK.RECEIVED"]))
    elif how == "extra":
        doc[MARKER] = draw(json_values)
    elif how == "marker_key":  # an unexpected key inside every nested object
        doc = _plant(doc)
    elif how == "instant":
        field = draw(st.sampled_from([n for n in ("occurred_at", "ingested_at", "due_at") if n in model.model_fields]))
        doc[field] = draw(st.sampled_from(EDGE_INSTANTS))
    else:
        doc[field] = MARKER if draw(st.booleans()) else {MARKER: MARKER}
    return doc, field, how


@pairs
@given(data=st.data())
@FUZZ
def test_mutated_events_are_refused_or_accepted_whole(spec: TopicSpec[Any], model: type[Event],
                                                      data: st.DataObject) -> None:
    tried(f"kafka.decode {spec.name}")
    event = data.draw(events(model), label="event")
    doc, field, how = _mutate(data.draw, json.loads(spec.encode(event)), model)
    decoded = assert_decodes_or_refuses(spec, dumps(doc, ascii_only=data.draw(st.booleans())))
    if how == "drop" and model.model_fields[field].is_required():
        assert decoded is None, f"accepted without the required field {field}"
    if how == "schema_version" and doc["schema_version"] not in (1, "1", 1.0):
        assert decoded is None, f"accepted schema_version={doc['schema_version']!r}"
    if how == "event_type":
        assert decoded is None, f"accepted event_type={doc['event_type']!r}"
    if decoded is not None and how == "extra":
        assert decoded == event, "an unknown field must be ignored, nothing else changed"


@pairs
@given(data=st.data())
@FUZZ
def test_corrupted_bytes_of_a_valid_event_are_refused_or_accepted_whole(
    spec: TopicSpec[Any], model: type[Event], data: st.DataObject
) -> None:
    tried(f"kafka.decode {spec.name}")
    raw = spec.encode(data.draw(events(model), label="event"))
    assert_decodes_or_refuses(spec, data.draw(mutated_bytes(raw), label="corrupted"))


@pairs
@given(data=st.data())
@FUZZ
def test_every_valid_event_round_trips(spec: TopicSpec[Any], model: type[Event], data: st.DataObject) -> None:
    tried(f"kafka.roundtrip {spec.name}")
    event = data.draw(events(model), label="event")
    decoded = spec.decode(spec.encode(event))
    assert decoded == event
    assert type(decoded) is model
    assert spec.key(decoded) == spec.key(event)


# ---- MessageProcessor: decode, or dead-letter with the reason -------------------------------------
class FakeTopic:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[dict[str, Any]] = []

    async def send(self, *, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        self.sent.append({"key": key, "value": value, "headers": dict(headers)})
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class FakeApp:
    """Stands in for the faust app: ``MessageProcessor`` only asks it for its DLQ topic."""

    def __init__(self) -> None:
        self.topics: dict[str, FakeTopic] = {}

    def topic(self, name: str, **_: Any) -> FakeTopic:
        return self.topics.setdefault(name, FakeTopic(name))


def message(spec: TopicSpec[Any], value: bytes | None, offset: int) -> SimpleNamespace:
    return SimpleNamespace(value=value, message=SimpleNamespace(topic=spec.name, partition=1, offset=offset,
                                                                key=b"k"))


def processor(spec: TopicSpec[Any]) -> tuple[MessageProcessor[Any], list[Any], list[str]]:
    handled: list[Any] = []
    counted: list[str] = []

    async def handle(model: Any) -> None:
        handled.append(model)

    async def handle_batch(models: list[Any]) -> None:
        handled.extend(models)

    proc = MessageProcessor(FakeApp(), spec, handle, on_dead_letter=counted.append, consumer="fuzz")  # type: ignore[arg-type]
    proc.handle_batch = handle_batch  # type: ignore[attr-defined]
    return proc, handled, counted


def assert_dead_letter(spec: TopicSpec[Any], letter: dict[str, Any], value: bytes | None, offset: int) -> None:
    headers = letter["headers"]
    if len(value or b"") > DLQ_MAX_VALUE_BYTES:  # its head, and the size it had
        assert letter["value"] == (value or b"")[:DLQ_MAX_VALUE_BYTES]
        assert headers[DLQ_TRUNCATED_HEADER] == str(len(value or b"")).encode()
    else:
        assert letter["value"] == (value or b"")
    assert headers[DLQ_ERROR_HEADER].decode("utf-8").strip()
    assert headers[DLQ_SOURCE_TOPIC_HEADER] == spec.name.encode()
    assert headers[DLQ_SOURCE_OFFSET_HEADER] == f"1:{offset}".encode()
    assert headers[DLQ_CONSUMER_HEADER] == b"fuzz"


@topics
@given(data=st.data())
@FUZZ
def test_message_processor_handles_or_dead_letters_every_message(spec: TopicSpec[Any], data: st.DataObject) -> None:
    tried(f"kafka.MessageProcessor {spec.name}")
    models = TOPIC_MODELS[spec.name]
    valid = st.sampled_from(models).flatmap(events).map(spec.encode)
    values = data.draw(st.lists(st.one_of(valid, valid.flatmap(mutated_bytes), st.none(), st.binary(max_size=200),
                                          st.builds(dumps, json_values)), min_size=1, max_size=6), label="values")
    batch = data.draw(st.booleans(), label="as a batch")
    proc, handled, counted = processor(spec)
    messages = [message(spec, v, offset) for offset, v in enumerate(values)]

    async def run() -> None:
        if batch:
            await proc.process_batch(messages, proc.handle_batch)  # type: ignore[attr-defined]
        else:
            for m in messages:
                await proc.process(m)

    asyncio.run(run())
    dlq = proc.dlq_topic.sent
    assert proc.dlq_topic.name == spec.dlq_name
    assert len(handled) + len(dlq) == len(values), "every message is handled or dead-lettered, once"
    assert counted == [spec.name] * len(dlq)
    letters = iter(dlq)
    models_in = iter(handled)
    for offset, value in enumerate(values):
        try:
            expected = spec.decode(value)
        except DecodeError:
            assert_dead_letter(spec, next(letters), value, offset)
        else:
            # Absent defaulted fields (event_id, timestamps, trace_id) are generated anew on each decode.
            got = next(models_in)
            assert type(got) is type(expected)
            assert got.model_dump(exclude=DEFAULTED) == expected.model_dump(exclude=DEFAULTED)
