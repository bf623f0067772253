"""Insights end to end: scored items and text-less survey answers over two weeks go onto their topics (each
twice, as a producer's retry would put them), alerts' read model counts each once, ``GET /v1/insights``
shows the needs and NPS, and a reader signs in to ``/insights`` in Debian's Chromium, where uPlot draws
negative share by need with one series per need, over the demo feed and the test's own items. The screenshot is kept in build/test-output/insights.png."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from feedback_shared.events import FeedbackScored, NeedScore, SentimentResult, SurveyAnswered, SurveyScores
from feedback_shared.topics import FEEDBACK_SCORED, SURVEY_ANSWERS
from feedback_tools.ctl import send_demo
from feedback_tools.devstack import EmbeddedStack
from tests.helpers import eventually
from tests.integration.test_inbox_browser import CHROMIUM_ARGS

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]
OUTPUT = Path(__file__).resolve().parents[2] / "build" / "test-output"


def reader_token(stack: EmbeddedStack) -> str:
    result = subprocess.run([sys.executable, "-m", "feedback_tools.ctl", "tokens", "create", "--role", "reader",
                             "--mongo-url", stack.config.mongo_url],
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip().splitlines()[-1]


def scored(source: str, when: datetime, label: str, score: float, needs: list[tuple[str, str]], text: str,
           nps: int | None = None) -> FeedbackScored:
    return FeedbackScored(
        source=source, kind="survey" if nps is not None else "review", external_id=uuid.uuid4().hex, text=text,
        feedback_event_id=uuid.uuid4(), model_version="it", language="en", touch_point="store",
        occurred_at=when, ingested_at=when,
        sentiment=SentimentResult(label=label, score=score,  # type: ignore[arg-type]
                                  probabilities={"negative": 0.4, "neutral": 0.2, "positive": 0.4}, confidence=0.9),
        needs=[NeedScore(need=n, score=0.8, sentiment=s) for n, s in needs],  # type: ignore[arg-type]
        survey=SurveyScores(survey_id="it", nps=nps) if nps is not None else None)


async def publish_twice(bootstrap: str, records: list[tuple[str, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, value in records + records:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


def test_a_reader_sees_insights_drawn_from_two_weeks_of_feedback(api: Api, stack: EmbeddedStack) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed for the browser test"
    # The demo feed as ``make run`` sends it (surveys across touch points, two weeks), and items of the
    # test's own, published straight to the topics, that it can count exactly.
    accepted, failed = send_demo(stack.config)
    assert failed == 0 and accepted >= 60
    source = f"it-{uuid.uuid4().hex[:8]}"
    today = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    events: list[FeedbackScored] = []
    for days_ago in range(14):
        when = today - timedelta(days=days_ago)
        events += [
            scored(source, when, "negative", -0.9, [("price", "negative")], "Far too expensive for what it is.", nps=2),
            scored(source, when, "negative", -0.6, [("reliability", "negative")], "It broke after a week."),
            scored(source, when, "positive", 0.8, [("experience", "positive"), ("price", "positive")],
                   "Lovely shop, fair prices.", nps=10),
        ]
    answers = [SurveyAnswered(source=source, external_id=uuid.uuid4().hex, touch_point="staff",
                              survey=SurveyScores(survey_id="it", nps=n, csat=c), occurred_at=today - timedelta(days=d))
               for d, n, c in ((1, 9, 5), (3, 4, 2), (8, 10, 4))]
    records = [(FEEDBACK_SCORED.name, FEEDBACK_SCORED.encode(e)) for e in events]
    records += [(SURVEY_ANSWERS.name, SURVEY_ANSWERS.encode(a)) for a in answers]
    asyncio.run(publish_twice(stack.config.bootstrap, records))

    alerts = api("alerts")

    def mine() -> list[dict[str, Any]]:
        return alerts.get("/v1/insights/items", params={"source": source, "limit": 500}).json()

    eventually(lambda: len(mine()) == len(events) + len(answers), timeout_s=60)
    # Redelivered, yet each once; a need with its own polarity.
    negative_price = alerts.get("/v1/insights/items", params={"source": source, "need": "price",
                                                              "sentiment": "negative", "limit": 500}).json()
    assert len(negative_price) == 14 and all(i["nps"] == 2 for i in negative_price)
    body = alerts.get("/v1/insights", params={"by": "source"}).json()
    [series] = [s for s in body["series"] if s["group"] == source]
    assert sum(series["negative"]) == 28 and sum(series["items"]) == 42
    by_need = alerts.get("/v1/insights").json()
    assert {"price", "reliability"} <= {s["group"] for s in by_need["series"]}
    assert by_need["totals"]["answers"] >= 31 and by_need["totals"]["nps"] is not None
    # SUR-3: the demo feed's consultants fell short of what their customers expected.
    assert any(g["touch_point"] == "consultants" and g["gap"] < 0 for g in by_need["expectations"])

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{stack.config.service_url('alerts')}/insights")
            page.fill('input[name="token"]', reader_token(stack))
            page.click('button[type="submit"]')
            expect(page).to_have_url(f"{stack.config.service_url('alerts')}/insights")
            expect(page.locator("#insights")).to_have_attribute("data-ready", "true", timeout=20_000)
            chart = page.locator("#chart-negative")
            expect(chart.locator("canvas")).to_have_count(1)
            assert int(chart.get_attribute("data-series") or 0) >= 2
            # The legend names each need drawn: price and reliability are among them.
            expect(chart.locator(".u-legend")).to_contain_text("price")
            expect(chart.locator(".u-legend")).to_contain_text("reliability")
            expect(page.locator("#chart-scores canvas")).to_have_count(1)
            expect(page.locator("#drivers tbody tr").first).to_be_visible()
            expect(page.locator("#chart-expectations canvas")).to_have_count(1)
            expect(page.locator("#expectations tbody tr").first).to_be_visible()
            page.screenshot(path=str(OUTPUT / "insights.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
    assert (OUTPUT / "insights.png").stat().st_size > 10_000


def test_the_mongo_store_counts_each_item_once_and_erasure_blanks_the_customer(stack: EmbeddedStack) -> None:
    from pymongo import MongoClient

    from alerts.insights import ALL, ItemQuery, Period, item_of_scored
    from alerts.stores.insights import MongoInsights

    client: MongoClient[dict[str, Any]] = MongoClient(stack.config.mongo_url, retryWrites=False, tz_aware=True)
    try:
        store = MongoInsights(client[f"it-insights-{uuid.uuid4().hex[:8]}"])
        store.ensure_indexes()
        when = datetime(2026, 11, 2, 9, tzinfo=UTC)
        items = [replace(item_of_scored(scored("shop", when, "negative", -round((i + 1) / 250, 3), [("price", "negative")],
                                               f"text {i}")), customer_id="c-erase" if i % 2 else "c-keep")
                 for i in range(250)]  # over two $in chunks
        assert store.record(items[:150]) == 150
        assert store.record(items) == 100  # a redelivery with more: only the new ones count
        period = Period(when.date(), when.date())
        # Only the aggregates the report reads are written.
        assert sorted(n for n in store.items.database.list_collection_names() if n.startswith("insight")) == [
            "insight_items", "insight_rollups", "insight_rollups_weekly"]
        [all_row] = store.rollup(period, [ALL])
        assert all_row.counters["items"] == 250 and all_row.counters["negative"] == 250
        [price] = store.rollup(period, ["need"])
        assert [score for _, score in price.worst] == [-1.0, -0.996, -0.992]  # the day's three most negative
        assert set(store.by_ids([i for i, _ in price.worst])) == {i for i, _ in price.worst}
        # The whole ISO week (Monday 2 November to Sunday 8) is read from the weekly rollup.
        [week] = store.rollup(Period(when.date(), when.date() + timedelta(days=6)), [ALL])
        assert week.counters["items"] == 250
        assert store.erase_customer("c-erase") == 125
        left = store.find(ItemQuery(period, limit=500))
        assert len(left) == 250
        assert {(i.customer_id, bool(i.excerpt)) for i in left} == {(None, False), ("c-keep", True)}
        assert store.rollup(period, [ALL])[0].counters["items"] == 250
    finally:
        client.close()
