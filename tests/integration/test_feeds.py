"""The RSS/Atom poller in a real ingest process (on the session's broker and database): a feed's entries are
published once, and a feed that feedparser would take minutes on (a long author name: its e-mail pattern
backtracks) is cut off at the feed's parse time limit while the service goes on answering."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from feedback_shared.topics import FEEDBACK_RECEIVED
from feedback_tools.devstack import EmbeddedStack, StackConfig, free_port
from tests.helpers import eventually, read_topic, uid

pytestmark = pytest.mark.integration


def rss(guid: str, title: str, author: str = "reviewer") -> bytes:
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Reviews</title><item><guid>{guid}</guid>'
            f"<title>{title}</title><author>{author}</author><description>Arrived on time.</description>"
            "<pubDate>Mon, 23 Nov 2026 08:00:00 GMT</pubDate></item></channel></rss>").encode()


@pytest.fixture
def feed_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    bodies: dict[str, bytes] = {}

    class Feeds(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server calls
            body = bodies.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Feeds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    finally:
        server.shutdown()


def test_feed_entries_are_published_and_a_slow_feed_is_cut_off(
        stack: EmbeddedStack, feed_server: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    base, bodies = feed_server
    guid = uid("feed")
    bodies["/good.rss"] = rss(guid, "Great shop")
    # About 0.35 s at 10,000 characters and growing with the square: 300,000 take several minutes to parse.
    bodies["/slow.rss"] = rss(uid("slow"), "Slow", author="x" * 300_000)
    feeds = [{"url": f"{base}/good.rss", "source": "itfeed", "kind": "review", "interval_s": 5},
             {"url": f"{base}/slow.rss", "source": "itslow", "kind": "review", "interval_s": 5,
              "parse_timeout_s": 2}]
    own = EmbeddedStack(StackConfig(
        data_dir=tmp_path, api_key="feed-key", service_ports={"ingest": free_port()},
        external_bootstrap=stack.config.bootstrap, external_mongo_url=stack.config.mongo_url,
        extra_env={"INGEST_FEEDS": json.dumps(feeds), "INGEST_MONGO__DATABASE": f"ingest_{uuid.uuid4().hex[:6]}",
                   # The local feed server is on loopback, which a feed may reach only when allowed.
                   "INGEST_FEED_ALLOW_HOSTS": '["127.0.0.1"]'},
    ))
    try:
        own.start_services(["ingest"])
        records = asyncio.run(read_topic(
            stack.config.bootstrap, FEEDBACK_RECEIVED.name, timeout_s=60,
            until=lambda recs: any(json.loads(r.value).get("external_id") == guid for r in recs)))
        mine = [json.loads(r.value) for r in records if json.loads(r.value).get("external_id") == guid]
        assert len(mine) == 1
        assert (mine[0]["source"], mine[0]["kind"]) == ("itfeed", "review")

        # The slow feed is reported each poll (killed at 2 s), and the service answers meanwhile.
        log = own.log_dir / "ingest.log"
        eventually(lambda: "feed not parsed: feed body not parsed within 2 s" in log.read_text("utf-8", "replace"),
                   timeout_s=30)
        with httpx.Client(base_url=own.config.service_url("ingest"), timeout=5) as client:
            for _ in range(10):
                started = time.monotonic()
                assert client.get("/healthz").status_code == 200
                assert time.monotonic() - started < 1.0
                time.sleep(0.3)
        # Polled again on its interval: the entry is a duplicate, not published twice.
        time.sleep(6)
        again = asyncio.run(read_topic(stack.config.bootstrap, FEEDBACK_RECEIVED.name, timeout_s=10))
        assert sum(json.loads(r.value).get("external_id") == guid for r in again) == 1
    finally:
        own.stop()
