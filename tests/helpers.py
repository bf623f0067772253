"""Helpers for the integration tests: polling, and an HTTP receiver standing in for Slack."""

from __future__ import annotations

import importlib.util
import time
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

import httpx

from feedback_tools.chaos import read_topic
from feedback_tools.receiver import StandInReceiver as Receiver

__all__ = ["Receiver", "alerts_for", "eventually", "load_deploy_check", "negative", "read_topic", "uid"]

T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout_s: float = 30.0, interval_s: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail with the last value after the timeout."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s; last value: {last!r}")


Api = Callable[[str], httpx.Client]


def uid(prefix: str) -> str:
    """A unique id for one test's customers, CSMs and items (tests share one stack)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def alerts_for(api: Api, customer_id: str) -> list[dict[str, Any]]:
    resp = api("alerts").get("/v1/alerts", params={"limit": 500})
    resp.raise_for_status()
    return [a for a in resp.json() if a["customer_id"] == customer_id]


def negative(api: Api, customer: str, text: str, **extra: Any) -> str:
    """Post a one-star review; its ingest event id."""
    body = {"source": "google", "external_id": uid("r"), "customer_id": customer, "rating": 1, "text": text, **extra}
    resp = api("ingest").post("/v1/reviews", json=body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["event_id"])


def load_deploy_check() -> ModuleType:
    """The deploy check (``make deploy-check``) as a module."""
    return importlib.import_module("feedback_tools.deploy_check")
