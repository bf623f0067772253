"""Structured logging: one JSON line per event, with personal data redacted.

Configured once, in each entry point. Modules log through the standard ``logging`` API
(``logger = logging.getLogger(__name__)``); structlog renders every record, ours and the libraries'.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

from feedback_shared.pii import redact

#: Fields the processors themselves add: never personal data.
_ADDED = frozenset({"timestamp", "level", "logger", "service"})
#: A uuid, or 32 hex digits (``trace_id``), with no run of eight digits: ``redact`` leaves such a string
#: as it is (a phone number or a card needs eight digits in a row outside a uuid's groups; a property
#: test holds it to that), so it skips the scan. Most fields of the per-event lines are such ids, and
#: redacting every one was a third of a log call's cost.
_ID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DIGIT_RUN = re.compile(r"[0-9]{8}")


def is_plain_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None and _DIGIT_RUN.search(value) is None


def event_fields(event: Any) -> dict[str, str]:
    """An event's ``event_id`` and ``trace_id`` as log fields (``extra=``), the ones an operator traces by."""
    return {name: str(value) for name in ("event_id", "trace_id") if (value := getattr(event, name, None)) is not None}


def _redact_values(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event_dict.items()):
        if isinstance(value, str) and key not in _ADDED and not is_plain_id(value):
            event_dict[key] = redact(value)
    return event_dict


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        # ``logger.info("...", extra={"event_id": ..., "trace_id": ...})``: JSON fields, not message text.
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_values,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter (per-connection lines) drowns the pipeline's own events.
    for noisy in ("kafka", "aiokafka", "faust", "mode", "uvicorn.access", "pymongo", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
