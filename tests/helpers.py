"""Helpers for the integration tests: polling, and an HTTP receiver standing in for Slack."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import httpx

from feedback_shared.chaos import read_topic

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


class Receiver:
    """An HTTP endpoint standing in for Slack or an integration: records every JSON POST."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.up = True
        #: Called with each request recorded, before it is answered (a fault to inject mid-send).
        self.on_post: Callable[[dict[str, Any]], None] | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                if not outer.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                request = {"path": self.path, "body": json.loads(body), "raw": body,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}
                outer.received.append(request)
                if outer.on_post is not None:
                    outer.on_post(request)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [r["body"] for r in self.received if r["path"] == f"/{path}"]


REPO = Path(__file__).resolve().parents[1]


def load_deploy_check() -> ModuleType:
    """``scripts/deploy_check.py`` as a module (scripts/ is not a package)."""
    if "deploy_check" in sys.modules:
        return sys.modules["deploy_check"]
    spec = importlib.util.spec_from_file_location("deploy_check", REPO / "scripts" / "deploy_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["deploy_check"] = module
    spec.loader.exec_module(module)
    return module
