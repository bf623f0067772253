"""The one stand-in HTTP receiver: a CSM's pager, Slack or an integration, for the demo, the bench, the
chaos run and the tests. It records each POST (path, headers, body), can be taken down (it answers
503, as an overloaded channel does), and can run a callback before it answers (to print a page, or to
inject a fault mid-send). It keeps connections open between requests (HTTP/1.1), as Slack, Teams and
webhook receivers do: a stand-in that closed each one made every page pay for a new connection, which
the services' pooled clients never do against a real receiver."""

from __future__ import annotations

import contextlib
import json
import socket
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
        self._connections: set[socket.socket] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with outer._lock:
                    outer._connections.add(self.connection)

            def finish(self) -> None:
                with outer._lock:
                    outer._connections.discard(self.connection)
                super().finish()

            def answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                if not outer.up:
                    self.answer(503)
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
                self.answer(200)

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
        """Stop listening and drop the open connections (their threads would otherwise go on answering)."""
        self.server.shutdown()
        self.server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
