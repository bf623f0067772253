"""Following RSS and Atom feeds: public mentions and review feeds, polled and ingested once per entry.

Each configured feed is fetched on its interval with a conditional GET (ETag / Last-Modified), parsed
with feedparser, and its entries submitted like any other item. The entry id is the ``external_id``,
so polling the same entries again only yields duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import feedparser
import httpx
from pydantic import ValidationError

from feedback_shared.adapters import generic_item
from feedback_shared.errors import DependencyUnavailable
from feedback_shared.loops import every
from feedback_shared.outbound import OutboundPolicy, OutboundRefused, check_webhook_url
from ingest.config import FeedSettings
from ingest.mapping import submission_for
from ingest.schemas import MentionIn, ReviewIn
from ingest.service import IngestService

logger = logging.getLogger(__name__)


@dataclass
class PollResult:
    entries: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    unavailable: int = 0
    errors: list[str] = field(default_factory=list)


def entry_item(entry: Any, feed: FeedSettings) -> dict[str, Any]:
    """One feed entry as a review or mention request."""
    summary = entry.get("summary") or ""
    content = entry.get("content") or []
    text = (content[0].get("value") if content else "") or summary
    raw = {
        "id": entry.get("id") or entry.get("link"),
        "title": entry.get("title"),
        "content": _strip_html(text) if text else None,
        "author": entry.get("author"),
        "link": entry.get("link"),
        "published_at": _timestamp(entry),
    }
    item = generic_item({k: v for k, v in raw.items() if v}, default_kind=feed.kind)
    item.pop("type", None)
    return {**item, "source": feed.source, "is_public": feed.is_public}


def _timestamp(entry: Any) -> str | None:
    """feedparser normalises RSS and Atom dates to UTC ``struct_time``s."""
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    year, month, day, hour, minute, second = parsed[:6]
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).isoformat()
    except ValueError:  # e.g. year -1 from "0000-00-00": pass the text on, so this entry alone is refused
        return str(entry.get("published") or entry.get("updated") or "out of range")


def _strip_html(text: str) -> str:
    import re
    from html import unescape

    return unescape(re.sub(r"<[^>]+>", " ", text)).strip()


async def read_at_most(response: httpx.Response, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes (the rest is not read)."""
    chunks, read = [], 0
    async for chunk in response.aiter_bytes():
        read += len(chunk)
        if read > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class FeedParseError(Exception):
    """A feed body the parser process gave no entries for: past its time limit, or the process failed."""


def feed_entries(content: bytes, feed: FeedSettings) -> list[tuple[str, dict[str, Any]]]:
    """Each entry of a feed body: (its id for messages, its review or mention request)."""
    return [(str(entry.get("id", "?")), entry_item(entry, feed)) for entry in feedparser.parse(content).entries]


def _serve_parses(connection: Any) -> None:
    """The parser process: a feed body and its settings in, its entries (or the error's text) out."""
    while True:
        try:
            content, feed = connection.recv()
        except EOFError:
            return
        try:
            connection.send(("ok", feed_entries(content, feed)))
        except Exception as exc:  # any failure of the parser is this feed's error, reported by the poll
            connection.send(("error", f"{type(exc).__name__}: {exc}"[:200]))


class FeedParser:
    """feedparser in a process of its own, with a time limit: a feed is a third party's input, and feedparser
    is slow on some of it (its author e-mail pattern backtracks: a 10,000-character author name takes 0.35 s,
    70,000 about 17 s, growing with the square). Parsing in the service would stall every request it serves;
    here a parse past the feed's ``parse_timeout_s`` kills the process, the poll reports it, and the next parse
    starts another."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: Any = None
        self._connection: Any = None

    def parse(self, content: bytes, feed: FeedSettings) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self._start()
            try:
                self._connection.send((content, feed))
                answered = self._connection.poll(feed.parse_timeout_s)
                reply: tuple[str, Any] = self._connection.recv() if answered else ("", None)
            except (OSError, EOFError) as exc:  # the process died (it could not start, or was killed)
                self.close()
                raise FeedParseError(f"parser process failed: {type(exc).__name__}") from exc
            if not answered:
                self.close()
                raise FeedParseError(f"feed body not parsed within {feed.parse_timeout_s:g} s (parse_timeout_s)")
        status, value = reply
        if status != "ok":
            raise ValueError(value)
        entries: list[tuple[str, dict[str, Any]]] = value
        return entries

    def _start(self) -> None:
        # Not fork: the service runs threads (the Kafka producer's), and a forked copy of them can deadlock.
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve_parses, args=(child,), daemon=True, name="feed-parser")
        self._process.start()
        child.close()

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join()
            self._connection.close()
        self._process = self._connection = None


#: Redirects followed from a feed's URL, each one's target checked like the URL itself.
MAX_FEED_REDIRECTS = 5


class FeedPoller:
    def __init__(self, feeds: list[FeedSettings], service: IngestService, client: httpx.AsyncClient,
                 parser: FeedParser | None = None, policy: OutboundPolicy | None = None) -> None:
        self.feeds = feeds
        self.service = service
        self.client = client
        self.parser = parser or FeedParser()
        #: What a feed URL and its redirects may reach: the public internet unless allow-listed.
        self.policy = policy or OutboundPolicy()
        self._validators: dict[str, dict[str, str]] = {}

    async def poll_once(self, feed: FeedSettings) -> PollResult:

        result = PollResult()
        headers = self._validators.get(feed.url, {})
        url = feed.url
        try:
            for hop in range(MAX_FEED_REDIRECTS + 1):
                # Checked before each request (a redirect could point inward); the check resolves the name.
                await asyncio.to_thread(check_webhook_url, url, self.policy)
                async with self.client.stream("GET", url, headers=headers, follow_redirects=False,
                                              timeout=30) as resp:
                    if resp.is_redirect and resp.next_request is not None:
                        if hop == MAX_FEED_REDIRECTS:
                            result.errors.append(f"more than {MAX_FEED_REDIRECTS} redirects")
                            return result
                        url = str(resp.next_request.url)
                        continue
                    if resp.status_code == 304:
                        return result
                    if resp.status_code != 200:
                        result.errors.append(f"fetch answered {resp.status_code}")
                        return result
                    content = await read_at_most(resp, feed.max_bytes)
                    break
        except OutboundRefused as exc:
            result.errors.append(f"feed URL refused: {exc}")
            return result
        except httpx.HTTPError as exc:
            result.errors.append(f"fetch failed: {type(exc).__name__}")
            return result
        if content is None:
            # Not parsed, and no validators kept: the next poll fetches it again, and says so again.
            result.errors.append(f"feed body over {feed.max_bytes} bytes (max_bytes): not read")
            return result
        try:
            entries = await asyncio.to_thread(self.parser.parse, content, feed)
        except (FeedParseError, ValueError) as exc:
            # Not parsed, and no validators kept: the next poll tries the whole feed again.
            result.errors.append(f"feed not parsed: {exc}")
            return result
        self._validators[feed.url] = {
            k: v for k, v in (("If-None-Match", resp.headers.get("etag")),
                              ("If-Modified-Since", resp.headers.get("last-modified"))) if v
        }
        model: type[ReviewIn] | type[MentionIn] = ReviewIn if feed.kind == "review" else MentionIn
        submissions = []
        for entry_id, item in entries:
            result.entries += 1
            try:
                body = model.model_validate(item)
            except ValidationError as exc:
                result.rejected += 1
                fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
                result.errors.append(f"entry {entry_id}: invalid {fields}")
                continue
            submissions.append(submission_for("review" if feed.kind == "review" else "mention", body))
        outcomes = await asyncio.to_thread(self.service.accept_many, submissions) if submissions else []
        for outcome in outcomes:
            if isinstance(outcome, DependencyUnavailable):
                result.unavailable += 1  # the next poll submits them again, under the same ids
            elif outcome.duplicate:
                result.duplicates += 1
            else:
                result.accepted += 1
        return result

    async def run_forever(self) -> None:
        async def follow(feed: FeedSettings) -> None:
            async def tick() -> None:
                result = await self.poll_once(feed)
                logger.info("feed_polled", extra={
                    "source": feed.source, "entries": result.entries, "accepted": result.accepted,
                    "duplicates": result.duplicates, "rejected": result.rejected, "unavailable": result.unavailable,
                    "errors": "; ".join(result.errors[:3])})

            await every(feed.interval_s, tick, name=f"feed_poll.{feed.source}")

        await asyncio.gather(*(follow(feed) for feed in self.feeds))
