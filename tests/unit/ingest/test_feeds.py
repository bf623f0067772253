from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry

from feedback_shared.events import FeedbackReceived
from feedback_shared.outbound import OutboundPolicy
from ingest.config import FeedSettings
from ingest.feeds import FeedParseError, FeedParser, FeedPoller
from ingest.metrics import IngestMetrics
from ingest.service import IngestService
from tests.unit.ingest.fakes import FakePublisher, FakeRepo

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Mentions</title><id>urn:feed</id><updated>2026-11-24T10:00:00Z</updated>
  <entry><id>urn:m:1</id><title>Курьер опоздал на три часа</title><updated>2026-11-24T09:00:00Z</updated>
    <author><name>olga_k</name></author><link href="https://social.example/p/1"/>
    <content type="html">&lt;p&gt;Никто не позвонил, &lt;b&gt;ужасно&lt;/b&gt;.&lt;/p&gt;</content></entry>
  <entry><id>urn:m:2</id><title>Şikayət</title><updated>2026-11-24T09:30:00Z</updated>
    <summary>Sifariş gecikdi, heç kim cavab vermir.</summary></entry>
  <entry><title>no id, no link, no text</title><updated>2026-11-24T09:45:00Z</updated></entry>
</feed>"""

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Reviews</title>
<item><guid>r-1</guid><title>Great shop</title><description>Fast delivery, thank you!</description>
<link>https://reviews.example/r-1</link><pubDate>Mon, 23 Nov 2026 08:00:00 GMT</pubDate></item>
</channel></rss>"""


def public_and_private(host: str) -> list[str]:
    """A stand-in resolver: ``*.internal`` names resolve inward, the rest to a public address."""
    return ["10.0.0.7"] if host.endswith(".internal") else ["93.184.216.34"]


PUBLIC_DNS = OutboundPolicy(resolve=public_and_private)


def poller_for(routes: dict[str, str], publisher: FakePublisher, seen: list[httpx.Request]) -> FeedPoller:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(200, text=routes[str(request.url)], headers={"ETag": '"v1"'})

    service = IngestService(FakeRepo(), publisher, IngestMetrics.create(CollectorRegistry()))
    return FeedPoller([], service, httpx.AsyncClient(transport=httpx.MockTransport(handler)), policy=PUBLIC_DNS)


def test_atom_entries_become_mentions_once() -> None:
    publisher, seen = FakePublisher(), []
    feed = FeedSettings(url="https://social.example/feed.atom", source="mastodon")
    poller = poller_for({feed.url: ATOM}, publisher, seen)
    first = asyncio.run(poller.poll_once(feed))
    assert (first.entries, first.accepted, first.rejected) == (3, 2, 1)
    events = [e for _, e in publisher.sent]
    assert all(isinstance(e, FeedbackReceived) for e in events)
    olga = next(e for e in events if isinstance(e, FeedbackReceived) and e.external_id == "urn:m:1")
    assert olga.kind == "mention" and olga.source == "mastodon" and olga.is_public
    assert olga.author == "olga_k" and olga.url == "https://social.example/p/1"
    assert olga.text == "Курьер опоздал на три часа\nНикто не позвонил,  ужасно ."
    assert olga.occurred_at.isoformat() == "2026-11-24T09:00:00+00:00"

    # Unchanged feed: a conditional GET, answered 304, publishes nothing.
    again = asyncio.run(poller.poll_once(feed))
    assert again.entries == 0
    assert seen[-1].headers["if-none-match"] == '"v1"'
    assert len(publisher.sent) == 2


def test_rss_reviews_and_repeats_are_duplicates() -> None:
    publisher, seen = FakePublisher(), []
    feed = FeedSettings(url="https://reviews.example/rss", source="trustpilot", kind="review")
    poller = poller_for({feed.url: RSS}, publisher, seen)
    assert asyncio.run(poller.poll_once(feed)).accepted == 1
    poller._validators.clear()  # the server lost its ETag: the same entries come back in full
    repeat = asyncio.run(poller.poll_once(feed))
    assert (repeat.accepted, repeat.duplicates) == (0, 1)
    [(_, event)] = publisher.sent
    assert isinstance(event, FeedbackReceived)
    assert event.kind == "review" and event.external_id == "r-1"
    assert event.text == "Great shop\nFast delivery, thank you!"


def test_a_feed_body_over_its_bound_is_refused_and_not_parsed() -> None:
    publisher, seen = FakePublisher(), []
    feed = FeedSettings(url="https://reviews.example/rss", source="trustpilot", kind="review", max_bytes=2048)
    padded = RSS.replace("<title>Reviews</title>", "<title>Reviews</title><!--" + "x" * 4096 + "-->")
    poller = poller_for({feed.url: padded}, publisher, seen)

    result = asyncio.run(poller.poll_once(feed))

    assert (result.entries, result.accepted) == (0, 0)
    assert result.errors == ["feed body over 2048 bytes (max_bytes): not read"]
    assert publisher.sent == []
    # No validators were kept from the refused answer: the next poll asks for the whole feed again.
    asyncio.run(poller.poll_once(feed))
    assert "if-none-match" not in seen[-1].headers
    # The same feed within the bound is read.
    roomy = FeedSettings(url=feed.url, source="trustpilot", kind="review", max_bytes=1_000_000)
    assert asyncio.run(poller.poll_once(roomy)).accepted == 1


def test_a_failure_while_the_body_is_read_is_a_fetch_failure() -> None:
    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield b"<?xml version='1.0'?><rss"
            raise httpx.ReadError("connection reset")

    publisher = FakePublisher()
    service = IngestService(FakeRepo(), publisher, IngestMetrics.create(CollectorRegistry()))
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200, stream=Broken())))
    feed = FeedSettings(url="https://reviews.example/rss", kind="review")

    result = asyncio.run(FeedPoller([feed], service, client, policy=PUBLIC_DNS).poll_once(feed))

    assert result.errors == ["fetch failed: ReadError"] and result.entries == 0 and publisher.sent == []


def test_a_feed_that_parses_too_slowly_is_reported_and_the_next_one_parses() -> None:
    # feedparser's author e-mail pattern takes the square of an author name's length: 70,000 characters
    # take about 17 s. The parse runs in a process of its own that is killed at the time limit.
    publisher, seen = FakePublisher(), []
    slow = RSS.replace("<guid>r-1</guid>", "<guid>r-1</guid><author>" + "x" * 70_000 + "</author>")
    feed = FeedSettings(url="https://reviews.example/rss", source="trustpilot", kind="review", parse_timeout_s=1)
    poller = poller_for({feed.url: slow}, publisher, seen)
    try:
        result = asyncio.run(poller.poll_once(feed))

        assert (result.entries, result.accepted) == (0, 0) and publisher.sent == []
        assert result.errors == ["feed not parsed: feed body not parsed within 1 s (parse_timeout_s)"]
        assert poller._validators == {}  # the next poll fetches the whole feed again
        other = FeedSettings(url="https://reviews.example/other", source="trustpilot", kind="review")
        poller_routes = poller_for({other.url: RSS}, publisher, seen)
        poller_routes.parser = poller.parser  # the same parser, its process started afresh
        assert asyncio.run(poller_routes.poll_once(other)).accepted == 1
    finally:
        poller.parser.close()


def test_the_parser_process_parses_feeds_and_tolerates_garbage() -> None:
    parser = FeedParser()
    try:
        assert parser.parse(RSS.encode(), FeedSettings(url="https://r.example/rss", kind="review"))[0][0] == "r-1"
        assert parser.parse(b"\x00\xff not a feed", FeedSettings(url="https://r.example/rss")) == []
    finally:
        parser.close()


def test_a_parser_process_that_dies_is_started_again_and_one_killed_mid_parse_is_a_parse_failure() -> None:
    parser = FeedParser()
    feed = FeedSettings(url="https://r.example/rss", kind="review", parse_timeout_s=60)
    slow = RSS.replace("<guid>r-1</guid>", "<guid>r-1</guid><author>" + "x" * 70_000 + "</author>").encode()
    try:
        assert len(parser.parse(RSS.encode(), feed)) == 1
        parser._process.kill()  # between parses, as the kernel's OOM killer would: the next parse starts another
        parser._process.join()
        assert len(parser.parse(RSS.encode(), feed)) == 1

        threading.Timer(0.5, parser._process.kill).start()  # during a parse (this one takes about 17 s)
        started = time.monotonic()
        with pytest.raises(FeedParseError, match="parser process failed: EOFError"):
            parser.parse(slow, feed)
        assert time.monotonic() - started < 10
        assert len(parser.parse(RSS.encode(), feed)) == 1
    finally:
        parser.close()


def redirecting_poller(routes: dict[str, httpx.Response], seen: list[httpx.Request],
                       policy: OutboundPolicy = PUBLIC_DNS) -> tuple[FeedPoller, FakePublisher]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return routes[str(request.url)]

    publisher = FakePublisher()
    service = IngestService(FakeRepo(), publisher, IngestMetrics.create(CollectorRegistry()))
    return FeedPoller([], service, httpx.AsyncClient(transport=httpx.MockTransport(handler)), policy=policy), publisher


def test_a_feed_url_or_a_redirect_that_reaches_inward_is_refused_before_any_request() -> None:
    seen: list[httpx.Request] = []
    moved = httpx.Response(301, headers={"Location": "http://metadata.internal/latest/"})
    poller, publisher = redirecting_poller({"https://reviews.example/rss": moved}, seen)

    inward = asyncio.run(poller.poll_once(FeedSettings(url="http://feeds.internal/rss", kind="review")))
    assert inward.errors[0].startswith("feed URL refused: ") and "10.0.0.7" in inward.errors[0]
    assert seen == []

    redirected = asyncio.run(poller.poll_once(FeedSettings(url="https://reviews.example/rss", kind="review")))
    assert redirected.errors[0].startswith("feed URL refused: ") and "10.0.0.7" in redirected.errors[0]
    assert [str(r.url) for r in seen] == ["https://reviews.example/rss"]  # the inward target never asked
    not_http = asyncio.run(poller.poll_once(FeedSettings(url="file:///etc/passwd", kind="review")))
    assert not_http.errors[0].startswith("feed URL refused: scheme file://")
    assert publisher.sent == []


def test_public_redirects_are_followed_a_few_times_and_allow_listed_hosts_are_polled() -> None:
    seen: list[httpx.Request] = []
    routes = {f"https://r.example/{i}": httpx.Response(302, headers={"Location": f"https://r.example/{i + 1}"})
              for i in range(10)}
    routes["https://r.example/2"] = httpx.Response(200, text=RSS)
    poller, publisher = redirecting_poller(routes, seen)

    assert asyncio.run(poller.poll_once(FeedSettings(url="https://r.example/0", kind="review"))).accepted == 1
    looping = asyncio.run(poller.poll_once(FeedSettings(url="https://r.example/3", kind="review")))
    assert looping.errors == ["more than 5 redirects"] and looping.entries == 0

    allowed, _ = redirecting_poller({"http://feeds.internal/rss": httpx.Response(200, text=RSS)}, seen,
                                    OutboundPolicy(allow_hosts=frozenset({"feeds.internal"}),
                                                   resolve=public_and_private))
    result = asyncio.run(allowed.poll_once(FeedSettings(url="http://feeds.internal/rss", source="own",
                                                        kind="review")))
    assert result.accepted == 1 and result.errors == []
