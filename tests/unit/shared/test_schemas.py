"""The published JSON Schemas (one per topic) are generated from the event models and kept in step."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from feedback_shared.events import FeedbackReceived
from feedback_shared.topics import ALL_TOPICS, FEEDBACK_RECEIVED, SCHEMA_DIR, schema_documents


def test_the_checked_in_schemas_are_the_generated_ones() -> None:
    generated = schema_documents()
    assert sorted(generated) == sorted(f"{spec.name}.schema.json" for spec in ALL_TOPICS)
    on_disk = {p.name: p.read_text("utf-8") for p in SCHEMA_DIR.glob("*.schema.json")}
    stale = sorted(name for name in generated if on_disk.get(name) != generated[name])
    assert not stale, f"out of date: {stale}; run `feedbackctl schemas` and commit the result"
    assert sorted(on_disk) == sorted(generated), "a schema file for a topic that no longer exists"


def _event_types(schema: dict[str, Any]) -> set[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            event_type = node.get("properties", {}).get("event_type")
            if isinstance(event_type, dict) and "const" in event_type:
                found.add(event_type["const"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return found


def test_each_schema_names_the_exact_event_types_of_its_topic() -> None:
    types = {name: _event_types(json.loads(text)) for name, text in schema_documents().items()}
    assert types["feedback.received.v1.schema.json"] == {"feedback.received"}
    assert types["commerce.events.v1.schema.json"] == {"purchase.recorded", "order.returned"}
    assert types["alerts.events.v1.schema.json"] == {"alert.raised", "alert.updated"}
    assert all(types.values())


@pytest.mark.parametrize(("event_type", "valid"), [("feedback.received", True), ("FeedbackReceived", False)])
def test_an_outside_producer_can_check_a_message_against_the_schema(event_type: str, valid: bool) -> None:
    schema = json.loads(schema_documents()[f"{FEEDBACK_RECEIVED.name}.schema.json"])
    message = json.loads(FEEDBACK_RECEIVED.encode(FeedbackReceived(
        source="google", kind="review", external_id="g-1", text="Slow delivery.")))
    message["event_type"] = event_type
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(message) is valid
