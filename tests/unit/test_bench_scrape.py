"""``make bench`` polls /metrics several times a second while it measures: the polls must not cost the
pipeline under test a new client (and TLS context, about 26 ms of CPU) and a new connection each."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from feedback_tools import bench

EXPOSITION = b'feedback_scored_total{language="en"} 7.0\nfeedback_scored_total{language="de"} 2.0\n'


@pytest.fixture
def metrics_server() -> Iterator[tuple[str, list[int]]]:
    connections: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the services' uvicorn answers

        def setup(self) -> None:
            connections.append(1)
            super().setup()

        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/metrics/" else 404)
            self.send_header("Content-Length", str(len(EXPOSITION)))
            self.end_headers()
            self.wfile.write(EXPOSITION)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", connections
    finally:
        server.shutdown()
        server.server_close()


def test_repeated_scrapes_reuse_one_connection(metrics_server: tuple[str, list[int]]) -> None:
    url, connections = metrics_server
    bench._scraper.cache_clear()
    for _ in range(5):
        assert bench.total(bench.scrape(url), "feedback_scored_total") == 9.0
    assert len(connections) == 1
