from __future__ import annotations

import json
import logging
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedback_shared.logs import configure_logging, is_plain_id
from feedback_shared.pii import redact


def test_log_lines_are_json_with_contact_details_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test-svc", "INFO", json=True)
    try:
        logging.getLogger("feedback.test").info(
            "complaint from jane.doe@example.com, call +7 701 555 12 34, card 4111 1111 1111 1111 event_id=%s", "e-1"
        )
        line = capsys.readouterr().out.strip().splitlines()[-1]
    finally:
        logging.getLogger().handlers.clear()
    record = json.loads(line)
    assert record["service"] == "test-svc" and record["level"] == "info"
    assert "event_id=e-1" in record["event"]
    for secret in ("jane.doe@example.com", "555 12 34", "4111 1111 1111 1111"):
        assert secret not in line
    assert "[email]" in record["event"] and "[phone]" in record["event"] and "****1111" in record["event"]


def test_event_ids_are_json_fields_and_only_personal_data_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test-svc", "INFO", json=True)
    event_id, trace_id = str(uuid.uuid4()), uuid.uuid4().hex
    try:
        logging.getLogger("feedback.test").info("accepted", extra={
            "event_id": event_id, "trace_id": trace_id, "author": "jane.doe@example.com",
            "order": "4111111111111111aaaaaaaaaaaaaaaa"})
        line = capsys.readouterr().out.strip().splitlines()[-1]
    finally:
        logging.getLogger().handlers.clear()
    record = json.loads(line)
    assert record["event"] == "accepted"
    assert record["event_id"] == event_id and record["trace_id"] == trace_id
    assert record["author"] == "[email]"
    # hex-shaped, but with a Luhn-valid card in it: not a plain id, so it is redacted
    assert record["order"] == "[card ****1111]aaaaaaaaaaaaaaaa"


_DIGIT_HEAVY = st.sampled_from("000000111111222333444555666777888999abcdef")


@settings(max_examples=3000, deadline=None)
@given(st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex),
    st.text(_DIGIT_HEAVY, min_size=32, max_size=32),
    st.tuples(*(st.text(_DIGIT_HEAVY, min_size=n, max_size=n) for n in (8, 4, 4, 4, 12))).map("-".join),
))
def test_what_skips_redaction_is_what_redaction_leaves_alone(value: str) -> None:
    if is_plain_id(value):
        assert redact(value) == value
