from __future__ import annotations

import json
import logging

import pytest

from feedback_shared.logs import configure_logging


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
