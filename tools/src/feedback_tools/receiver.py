"""The one stand-in HTTP receiver: a CSM's pager, Slack or an integration, for the demo, the bench, the
chaos run and the tests. It records each POST (path, headers, body), can be taken down (it answers
503, as an overloaded channel does), and can run a callback before it answers (to print a page, or to
inject a fault mid-send)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Request = dict[str, Any]


class StandInReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, keep: bool = True,
                 on_request: Callable[[Request], None] | None = None) -> None:
        """``keep``: hold every request in ``received`` (off for long runs that only count);
        ``on_request``: called with each request before it is answered."""
        self.received: list[Request] = []
        self.count = 0
        self.up = True
        self.keep = keep
        self.on_request = on_request
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                if not outer.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = None
                request = {"path": self.path, "body": body, "raw": raw,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}
                with outer._lock:
                    outer.count += 1
                    if outer.keep:
                        outer.received.append(request)
                if outer.on_request is not None:
                    outer.on_request(request)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True, name="stand-in-receiver").start()

    def url(self, path: str, scheme: str = "json") -> str:
        """The Apprise URL (``json://…`` by default) that delivers to ``path`` here."""
        return f"{scheme}://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def bodies(self, path: str) -> list[Any]:
        with self._lock:
            return [r["body"] for r in self.received if r["path"] == f"/{path.lstrip('/')}"]

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.received)

    def reset(self) -> None:
        with self._lock:
            self.received, self.count = [], 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
