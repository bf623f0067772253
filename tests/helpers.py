"""Helpers for the integration tests: polling, and an HTTP receiver standing in for Slack."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from feedback_shared.chaos import read_topic

__all__ = ["Receiver", "eventually", "load_deploy_check", "read_topic"]

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


class Receiver:
    """An HTTP endpoint standing in for Slack or an integration: records every JSON POST."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.up = True
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                if not outer.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.received.append({"path": self.path, "body": json.loads(body), "raw": body,
                                       "headers": {k.lower(): v for k, v in self.headers.items()}})
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
