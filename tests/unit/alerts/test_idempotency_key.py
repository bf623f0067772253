"""Pages to HTTP channels carry the delivery id as an ``Idempotency-Key`` header (a repeat after a crash
can be dropped by the receiver); URLs of channels that cannot carry one are left alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from alerts.notifier import send_with_apprise, with_idempotency_key


class Recorder(BaseHTTPRequestHandler):
    keys: list[str | None] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        Recorder.keys.append(self.headers.get("Idempotency-Key"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[int]:
    Recorder.keys = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_the_same_delivery_reaches_the_receiver_with_the_same_key(receiver: int) -> None:
    url = f"json://127.0.0.1:{receiver}/page"
    for _ in range(2):  # a retry of one delivery
        send_with_apprise(with_idempotency_key(url, "5f0c-delivery"), "title", "body")
    send_with_apprise(with_idempotency_key(f"{url}?method=POST", "other delivery/1"), "title", "body")
    assert Recorder.keys == ["5f0c-delivery", "5f0c-delivery", "other delivery/1"]


@pytest.mark.parametrize("url", ["mailto://user:pass@example.com", "slack://a/b/c", "msteams://x/y"])
def test_channels_without_headers_are_left_alone(url: str) -> None:
    assert with_idempotency_key(url, "k") == url
