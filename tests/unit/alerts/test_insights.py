"""The insights read model's logic: items from scored feedback and survey answers, the aggregates a batch
adds (once per item), and the report (weekly negative share, NPS/CSAT, what rose, the drivers)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alerts.config import Settings
from alerts.insights import (
    EXCERPT_CHARS,
    BadRange,
    Dimension,
    InsightItem,
    ItemQuery,
    NeedMention,
    Period,
    RollupRow,
    expectation_gaps,
    increments,
    item_doc,
    item_from_doc,
    item_of_scored,
    item_of_survey,
    period_of,
    report,
    rollup_dimensions,
)
from alerts.metrics import AlertsMetrics
from alerts.rules import AlertPolicy
from alerts.service import AlertService
from feedback_shared.events import FeedbackScored, NeedScore, SentimentResult, SurveyAnswered, SurveyScores
from tests.unit.alerts.fakes import FakeInsights, fake_store

START = date(2026, 11, 2)  # a Monday; the period is the two weeks from it
PERIOD = Period(START, START + timedelta(days=13))


def scored(*, label: str = "negative", score: float = -0.8, needs: tuple[tuple[str, str], ...] = (("price", "negative"),),
           day: date = START, nps: int | None = None, csat: int | None = None, text: str = "Too expensive for what it is.",
           **overrides: Any) -> FeedbackScored:
    fields: dict[str, Any] = {
        "source": "google", "kind": "survey" if nps is not None or csat is not None else "review",
        "external_id": uuid.uuid4().hex, "customer_id": "c-1", "text": text, "feedback_event_id": uuid.uuid4(),
        "model_version": "t", "language": "en", "touch_point": "store",
        "occurred_at": datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
        "sentiment": SentimentResult(label=label, score=score,  # type: ignore[arg-type]
                                     probabilities={"negative": 0.5, "neutral": 0.25, "positive": 0.25}, confidence=0.9),
        "needs": [NeedScore(need=n, score=0.8, sentiment=s) for n, s in needs],  # type: ignore[arg-type]
        "survey": SurveyScores(survey_id="s-1", nps=nps, csat=csat) if nps is not None or csat is not None else None,
    }
    fields.update(overrides)
    return FeedbackScored(**fields)


def item(day: date = START, *, sentiment: str | None = "negative", score: float | None = -0.8,
         needs: tuple[tuple[str, str], ...] = (("price", "negative"),), nps: int | None = None, csat: int | None = None,
         **fields: Any) -> InsightItem:
    return InsightItem(item_id=fields.pop("item_id", uuid.uuid4().hex), day=day, kind="review",
                       source=fields.pop("source", "google"), language=fields.pop("language", "en"),
                       touch_point=fields.pop("touch_point", "store"), sentiment=sentiment, score=score,
                       needs=tuple(NeedMention(n, s, 0.8) for n, s in needs), nps=nps, csat=csat, **fields)


def rows_for(store: FakeInsights, period: Period, by: Dimension) -> list[RollupRow]:
    """What ``GET /v1/insights`` reads: the period's rollups, and the period before's for ``by``."""
    return store.rollup(period, rollup_dimensions(by)) + store.rollup(period.previous(), [by])


def no_items(_ids: list[str]) -> dict[str, InsightItem]:
    return {}


def test_a_scored_item_keeps_its_dimensions_scores_and_a_short_excerpt() -> None:
    event = scored(nps=3, csat=2, text="word " * 200, touch_point="Price tags")
    got = item_of_scored(event)
    assert got.item_id == f"feedback:{event.feedback_event_id}"
    assert (got.day, got.touch_point, got.language, got.nps, got.csat, got.nps_group) == (
        START, "price_tags", "en", 3, 2, "detractor")
    assert len(got.excerpt) <= EXCERPT_CHARS and got.excerpt.endswith("…")
    assert item_from_doc(item_doc(got)) == got


def test_a_survey_answer_without_text_counts_for_nps_and_csat_only() -> None:
    answer = SurveyAnswered(external_id="a-1", survey=SurveyScores(survey_id="s", nps=10, csat=5), touch_point="staff",
                            occurred_at=datetime(2026, 11, 3, 8, tzinfo=UTC))
    got = item_of_survey(answer)
    assert (got.item_id, got.sentiment, got.nps_group, got.touch_point) == (f"survey:{answer.event_id}", None,
                                                                            "promoter", "staff")
    inc = increments([got])
    assert inc.rollups[("2026-11-03", "all", "all")] == {"answers": 1, "promoters": 1, "csat_sum": 5, "csat_count": 1}
    assert not any(dim == "need" for _, dim, _ in inc.rollups)


def test_each_need_counts_with_its_own_polarity_and_no_need_counts_as_none() -> None:
    mixed = item(sentiment="positive", score=0.4, needs=(("experience", "positive"), ("price", "negative")))
    plain = item(sentiment="neutral", score=0.0, needs=())
    inc = increments([mixed, plain])
    day = START.isoformat()
    assert {key[2]: (row["items"], row.get("positive", 0), row.get("negative", 0), row.get("neutral", 0))
            for key, row in inc.rollups.items() if key[1] == "need"} == {
        "experience": (1, 1, 0, 0), "price": (1, 0, 1, 0), "none": (1, 0, 0, 1)}
    assert "negative" not in inc.rollups[(day, "all", "all")]  # the items themselves: one positive, one neutral
    assert inc.rollups[(day, "all", "all")]["items"] == 2


def test_a_redelivered_batch_adds_nothing() -> None:
    store = FakeInsights()
    batch = [item(), item(nps=2)]
    assert store.record(batch) == 2
    assert store.record(batch + batch) == 0
    assert store.rollups[(START.isoformat(), "all", "all")]["items"] == 2
    assert store.rollups[(START.isoformat(), "need", "price")]["items"] == 2


def test_the_report_gives_weekly_negative_share_nps_and_csat() -> None:
    store = FakeInsights()
    week2 = START + timedelta(days=8)
    store.record([
        item(START, needs=(("price", "negative"),), nps=0, csat=1),
        item(START, sentiment="positive", score=0.9, needs=(("price", "positive"),), nps=10, csat=5),
        item(week2, needs=(("reliability", "negative"),), nps=9),
        item(week2, sentiment="positive", score=0.5, needs=(("reliability", "positive"),), nps=10),
    ])
    out = report(rows_for(store, PERIOD, "need"), PERIOD, "need",
                 store.by_ids)
    assert out["weeks"] == ["2026-11-02", "2026-11-09"]
    series = {s["group"]: s["negative_share"] for s in out["series"]}
    assert series == {"price": [0.5, None], "reliability": [None, 0.5]}
    assert out["scores"]["nps"] == [0.0, 100.0]  # one promoter, one detractor; then two promoters
    assert out["scores"]["csat"] == [3.0, None]
    assert out["totals"]["nps"] == 50.0 and out["totals"]["items"] == 4 and out["totals"]["negative_share"] == 0.5


def test_rising_groups_are_measured_against_the_previous_period_with_their_most_negative_items() -> None:
    store = FakeInsights()
    before = START - timedelta(days=3)
    store.record([item(before, needs=(("price", "negative"),)), item(before, needs=(("price", "negative"),)),
                  item(before, needs=(("empathy", "negative"),))])
    worst = item(START, score=-0.99, needs=(("empathy", "negative"),), excerpt="Nobody cared at all.")
    store.record([worst, item(START, score=-0.3, needs=(("empathy", "negative"),)),
                  item(START, score=-0.5, needs=(("empathy", "negative"),)),
                  item(START, needs=(("price", "negative"),))])
    out = report(rows_for(store, PERIOD, "need"), PERIOD, "need",
                 store.by_ids)
    assert [(r["group"], r["negative"], r["previous_negative"], r["delta"]) for r in out["rising"]] == [
        ("empathy", 3, 1, 2)]  # price fell from 2 to 1: not rising
    tops = out["rising"][0]["top_items"]
    assert [t["score"] for t in tops] == [-0.99, -0.5, -0.3]
    assert tops[0]["id"] == worst.item_id and tops[0]["excerpt"] == "Nobody cared at all."


def test_drivers_compare_the_needs_of_detractors_and_promoters() -> None:
    store = FakeInsights()
    store.record([item(needs=(("price", "negative"),), nps=2), item(needs=(("price", "negative"), ("empathy", "negative")),
                                                                    nps=4),
                  item(sentiment="positive", score=0.8, needs=(("experience", "positive"),), nps=10),
                  item(sentiment="neutral", score=0.0, needs=(("price", "neutral"),), nps=9)])
    out = report(store.rollup(PERIOD, ["need", "all"]), PERIOD, "need", no_items)
    drivers = {d["need"]: d for d in out["drivers"]}
    assert drivers["price"] == {"need": "price", "detractors": 2, "promoters": 1, "detractor_share": 1.0,
                                "promoter_share": 0.5}
    assert drivers["empathy"]["detractor_share"] == 0.5 and drivers["experience"]["promoter_share"] == 0.5
    assert out["drivers"][0]["need"] == "price"  # the strongest detractor driver first


def test_reports_by_another_dimension_group_by_it() -> None:
    store = FakeInsights()
    store.record([item(language="ka"), item(language="ka", sentiment="positive", score=0.5), item(language="en")])
    out = report(store.rollup(PERIOD, ["language", "need", "all"]), PERIOD, "language", no_items)
    assert {s["group"]: s["negative_share"][0] for s in out["series"]} == {"ka": 0.5, "en": 1.0}


def test_the_drill_down_filters_a_need_by_its_own_polarity() -> None:
    store = FakeInsights()
    mixed = item(sentiment="positive", score=0.4, needs=(("experience", "positive"), ("price", "negative")))
    store.record([mixed, item(needs=(("price", "positive"),), sentiment="positive", score=0.3), item(needs=())])
    assert [i.item_id for i in store.find(ItemQuery(PERIOD, need="price", sentiment="negative"))] == [mixed.item_id]
    assert len(store.find(ItemQuery(PERIOD, need="price"))) == 2
    assert len(store.find(ItemQuery(PERIOD, need="none"))) == 1
    assert store.find(ItemQuery(PERIOD, sentiment="negative", need=None))[0].needs == ()


def test_the_range_defaults_to_eight_weeks_and_refuses_reversed_or_huge_ranges() -> None:
    today = date(2026, 12, 3)  # a Thursday: this week and the 7 before it, from a Monday
    assert period_of(None, None, today) == Period(date(2026, 10, 12), today)
    assert len(period_of(None, None, today).weeks()) == 8
    with pytest.raises(BadRange):
        period_of(date(2026, 12, 4), date(2026, 12, 1), today)
    with pytest.raises(BadRange):
        period_of(date(2025, 1, 1), date(2026, 12, 1), today)
    with pytest.raises(BadRange):
        period_of(date(1, 1, 2), date(1, 1, 9), today)
    with pytest.raises(BadRange, match="too early"):  # the default start, 7 weeks before, is no date
        period_of(None, date(1, 1, 1), today)


def test_erasure_blanks_the_customer_and_the_excerpts_but_keeps_the_counts() -> None:
    store = FakeInsights()
    store.record([item(customer_id="c-9", excerpt="my name is Anna"), item(customer_id="c-8", excerpt="other")])
    assert store.erase_customer("c-9") == 1
    texts = {(i.customer_id, i.excerpt) for i in store.items.values()}
    assert texts == {(None, ""), ("c-8", "other")}
    assert store.rollups[(START.isoformat(), "all", "all")]["items"] == 2


def test_a_range_reads_whole_weeks_weekly_and_its_edges_daily() -> None:
    period = Period(date(2026, 11, 4), date(2026, 11, 24))  # Wednesday to Tuesday
    full, loose = period.plan()
    assert full == [date(2026, 11, 9), date(2026, 11, 16)]
    assert loose == [date(2026, 11, 4), date(2026, 11, 5), date(2026, 11, 6), date(2026, 11, 7), date(2026, 11, 8),
                     date(2026, 11, 23), date(2026, 11, 24)]
    assert period.weeks() == [date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16), date(2026, 11, 23)]


def test_the_weekly_rollups_sum_the_days_and_keep_the_weeks_worst() -> None:
    inc = increments([item(date(2026, 11, 3), item_id="a", score=-0.2), item(date(2026, 11, 6), item_id="b", score=-0.9),
                      item(date(2026, 11, 10), item_id="c")])
    assert inc.weekly[("2026-11-02", "all", "all")]["items"] == 2
    assert inc.weekly[("2026-11-09", "all", "all")]["items"] == 1
    assert inc.weekly_worst[("2026-11-02", "need", "price")] == [("b", -0.9), ("a", -0.2)]


def test_a_report_over_part_weeks_counts_every_day_once() -> None:
    store = FakeInsights()
    days = [date(2026, 11, 2) + timedelta(days=d) for d in range(28)]
    store.record([item(day, sentiment="negative" if day.day % 2 else "positive", score=-0.5 if day.day % 2 else 0.5,
                       needs=(("price", "negative" if day.day % 2 else "positive"),)) for day in days])
    period = Period(date(2026, 11, 4), date(2026, 11, 24))  # mid-week to mid-week: 21 days
    out = report(rows_for(store, period, "need"), period, "need", no_items)
    assert out["totals"]["items"] == 21
    [price] = out["series"]
    assert price["items"] == [5, 7, 7, 2]  # Wed-Sun, two whole weeks, Mon-Tue
    assert sum(price["negative"]) == sum(1 for d in days if period.start <= d <= period.end and d.day % 2)


# ---- SUR-3: expected vs perceived at each touch point ------------------------------------------------------
def test_an_answer_keeps_what_it_expected_and_perceived() -> None:
    with_text = item_of_scored(scored(nps=3, survey=SurveyScores(survey_id="s", nps=3, expected=5, perceived=2)))
    without = item_of_survey(SurveyAnswered(external_id="a-2", touch_point="catalogue",
                                            survey=SurveyScores(survey_id="s", expected=3, perceived=4)))
    assert (with_text.expected, with_text.perceived) == (5, 2)
    assert (without.expected, without.perceived, without.touch_point) == (3, 4, "catalogue")
    assert item_from_doc(item_doc(with_text)) == with_text
    # A stored item from before SUR-3 has neither.
    old = item_doc(item())
    del old["expected"], old["perceived"]
    assert (item_from_doc(old).expected, item_from_doc(old).perceived) == (None, None)


def test_each_touch_point_adds_up_expected_perceived_and_the_gap_of_answers_that_rated_both() -> None:
    inc = increments([item(touch_point="staff", expected=5, perceived=2), item(touch_point="staff", expected=4, perceived=4),
                      item(touch_point="staff", perceived=1), item(touch_point="store", expected=2, perceived=5)])
    staff = inc.rollups[(START.isoformat(), "touch_point", "staff")]
    assert {k: v for k, v in staff.items() if k.startswith(("expected", "perceived", "gap"))} == {
        "expected_sum": 9, "expected_count": 2, "perceived_sum": 7, "perceived_count": 3, "gap_sum": -3, "gap_count": 2}
    assert inc.weekly[(START.isoformat(), "touch_point", "store")]["gap_sum"] == 3


def test_the_report_gives_each_touch_points_mean_expected_perceived_and_gap() -> None:
    store = FakeInsights()
    week2 = START + timedelta(days=8)
    store.record([item(START, touch_point="consultants", expected=5, perceived=1),
                  item(week2, touch_point="consultants", expected=4, perceived=3),
                  item(week2, touch_point="consultants", perceived=2),  # expected not rated: no gap of its own
                  item(START, touch_point="product_use", expected=3, perceived=5),
                  item(START, touch_point="advert", nps=9),  # no feeling rated: not listed
                  item(START - timedelta(days=1), touch_point="product_use", expected=5, perceived=1)])  # before
    out = report(rows_for(store, PERIOD, "need"), PERIOD, "need", no_items)
    assert out["expectations"] == [
        {"touch_point": "consultants", "expected": 4.5, "expected_answers": 2, "perceived": 2.0,
         "perceived_answers": 3, "gap": -2.5, "answers": 2},
        {"touch_point": "product_use", "expected": 3.0, "expected_answers": 1, "perceived": 5.0,
         "perceived_answers": 1, "gap": 2.0, "answers": 1},
    ]


def test_the_gap_over_part_weeks_counts_every_day_once() -> None:
    store = FakeInsights()
    days = [date(2026, 11, 2) + timedelta(days=d) for d in range(28)]
    store.record([item(day, touch_point="store", expected=4, perceived=2 if day.day % 2 else 5) for day in days])
    period = Period(date(2026, 11, 4), date(2026, 11, 24))  # edges read daily, the middle weekly
    [store_gap] = report(rows_for(store, period, "language"), period, "language", no_items)["expectations"]
    inside = [d for d in days if period.start <= d <= period.end]
    assert store_gap["answers"] == len(inside) == 21
    short = sum(1 for d in inside if d.day % 2)
    assert store_gap["gap"] == round((short * -2 + (21 - short) * 1) / 21, 2)


def test_a_touch_point_rated_on_one_side_only_has_no_gap_and_comes_last() -> None:
    rows = [RollupRow(START, "touch_point", "store", {"perceived_sum": 4, "perceived_count": 1}),
            RollupRow(START, "touch_point", "staff", {"expected_sum": 4, "expected_count": 1, "perceived_sum": 5,
                                                      "perceived_count": 1, "gap_sum": 1, "gap_count": 1})]
    gaps = expectation_gaps(rows)
    assert [g["touch_point"] for g in gaps] == ["staff", "store"]
    assert gaps[1] == {"touch_point": "store", "expected": None, "expected_answers": 0, "perceived": 4.0,
                       "perceived_answers": 1, "gap": None, "answers": 0}


def test_every_report_reads_the_touch_point_rollups() -> None:
    assert all("touch_point" in rollup_dimensions(by) for by in ("need", "language", "source", "touch_point"))


# ---- the consumers' metrics -------------------------------------------------------------------------------
def test_recording_counts_new_and_duplicate_items_and_times_each_write() -> None:
    registry = CollectorRegistry()
    store = fake_store()
    service = AlertService(store, Settings(), AlertsMetrics.create(registry), AlertPolicy())

    def items(outcome: str, consumer: str = "alerts.insights") -> float | None:
        return registry.get_sample_value("alerts_insight_items_total", {"consumer": consumer, "outcome": outcome})

    def writes(consumer: str) -> float | None:
        return registry.get_sample_value("alerts_insights_write_seconds_count", {"consumer": consumer})

    # Pre-initialised: the series exist at zero before the first batch.
    assert (items("recorded"), items("duplicate", "alerts.insights_surveys"), writes("alerts.insights")) == (0, 0, 0)
    first, second = item(), item()
    assert service.record_insights([first, second, first], "alerts.insights") == 2
    assert (items("recorded"), items("duplicate")) == (2, 1)  # the same item twice in one batch
    assert service.record_insights([second, item()], "alerts.insights") == 1  # a redelivery and a new one
    assert (items("recorded"), items("duplicate")) == (3, 2)
    assert writes("alerts.insights") == 2
    answer = item_of_survey(SurveyAnswered(external_id="a-9", survey=SurveyScores(survey_id="s", nps=9)))
    assert service.record_insights([answer], "alerts.insights_surveys") == 1
    assert (items("recorded", "alerts.insights_surveys"), writes("alerts.insights_surveys")) == (1, 1)
    assert items("recorded") == 3  # the other consumer's count did not move
    assert len(store.insights.items) == 4  # type: ignore[attr-defined]
