"""Insights: what customers say over time, by need, language, source and touch point, with NPS and CSAT.

Pure logic over typed records; the store (``alerts.stores.insights``) keeps three things:

* one *item* per scored feedback item or text-less survey answer (the drill-down), keyed by the event
  it comes from, so a redelivery is never counted twice;
* *counts* per day × need × sentiment × language × source × touch point (the read model's grain; stored
  as one document per day × language × source × touch point with a counter per need and polarity), and
  *scores* per day × source × language × touch point (NPS groups, CSAT sum and count, net sentiment);
* *rollups* per day × dimension × value with the same counters, and the ids of the day's most negative
  items for that value (``worst``); and the same per ISO week. The touch-point rollups also carry what
  answers said they expected and perceived there (SUR-3), so the report gives each touch point's gap.
  ``GET /v1/insights`` reads the weekly rollups of the weeks wholly inside its range and the daily ones
  of the days at its edges: a few hundred small documents, whatever the number of items (the report
  never scans the items).

Weeks run Monday to Sunday; the first and last week of a range may be partial.

An item with no need counts under need ``none``. A need's own polarity (``NeedScore.sentiment``) is
what counts for that need: "great food, awful prices" is negative for price, not for the food.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from feedback_shared.events import FeedbackScored, SurveyAnswered

Dimension = Literal["need", "language", "source", "touch_point"]
DIMENSIONS: tuple[Dimension, ...] = ("need", "language", "source", "touch_point")
#: The rollup of everything, per day (totals, NPS and CSAT over time).
ALL = "all"
NO_NEED = "none"
UNKNOWN = "unknown"
EXCERPT_CHARS = 280
#: The longest range one query may cover (a year and a bit): the answer stays small and fast.
MAX_RANGE_DAYS = 400
DEFAULT_WEEKS = 8
RISING_GROUPS = 5
TOP_ITEMS = 3
#: How many of a day's most negative items each rollup keeps (the top items of a rising group).
WORST_KEPT = TOP_ITEMS

#: The counters every score row and rollup row carries. ``items``: items with a sentiment (text);
#: ``answers``: answers with an NPS; ``csat_count``: answers with a CSAT; ``expected_*`` and ``perceived_*``:
#: answers that rated the feeling they expected, or the one they had (SUR-3); ``gap_*``: answers that rated
#: both, with the sum of perceived minus expected.
COUNTERS: tuple[str, ...] = ("items", "negative", "neutral", "positive", "sentiment_sum", "answers", "promoters",
                             "passives", "detractors", "csat_sum", "csat_count", "expected_sum", "expected_count",
                             "perceived_sum", "perceived_count", "gap_sum", "gap_count")


@dataclass(frozen=True)
class NeedMention:
    need: str
    sentiment: str
    score: float


@dataclass(frozen=True)
class InsightItem:
    """One scored feedback item or one survey answer without text, as the insights see it."""

    item_id: str
    day: date
    kind: str
    source: str
    language: str
    touch_point: str
    #: None for a survey answer without text (nothing to score).
    sentiment: str | None = None
    score: float | None = None
    needs: tuple[NeedMention, ...] = ()
    nps: int | None = None
    csat: int | None = None
    excerpt: str = ""
    customer_id: str | None = None
    #: SUR-3: the feeling the answer expected at its touch point, and the one it had (1-5 each).
    expected: int | None = None
    perceived: int | None = None

    @property
    def nps_group(self) -> str | None:
        if self.nps is None:
            return None
        return "promoter" if self.nps >= 9 else "passive" if self.nps >= 7 else "detractor"

    def need_polarities(self) -> list[tuple[str, str]]:
        """(need, sentiment) pairs this item counts under: its needs with their own polarity, or
        ``none`` with the item's sentiment. Empty for an answer with no text."""
        if self.sentiment is None:
            return []
        if not self.needs:
            return [(NO_NEED, self.sentiment)]
        return [(n.need, n.sentiment) for n in self.needs]


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 1] + "…"


def item_of_scored(scored: FeedbackScored) -> InsightItem:
    survey = scored.survey
    return InsightItem(
        item_id=f"feedback:{scored.feedback_event_id}", day=scored.occurred_at.date(), kind=scored.kind,
        source=scored.source, language=scored.language or UNKNOWN, touch_point=scored.touch_point or UNKNOWN,
        sentiment=scored.sentiment.label, score=scored.sentiment.score,
        needs=tuple(NeedMention(n.need, n.sentiment, n.score) for n in scored.needs),
        nps=survey.nps if survey else None, csat=survey.csat if survey else None,
        excerpt=_excerpt(scored.text), customer_id=scored.customer_id,
        expected=survey.expected if survey else None, perceived=survey.perceived if survey else None)


def item_of_survey(answer: SurveyAnswered) -> InsightItem:
    return InsightItem(
        item_id=f"survey:{answer.event_id}", day=answer.occurred_at.date(), kind="survey", source=answer.source,
        language=answer.language or UNKNOWN, touch_point=answer.touch_point or UNKNOWN,
        nps=answer.survey.nps, csat=answer.survey.csat, customer_id=answer.customer_id,
        expected=answer.survey.expected, perceived=answer.survey.perceived)


# ---- documents -----------------------------------------------------------------------------------------
def item_doc(item: InsightItem) -> dict[str, Any]:
    polarities = item.need_polarities()
    return {
        "_id": item.item_id, "day": item.day.isoformat(), "kind": item.kind, "source": item.source,
        "language": item.language, "touch_point": item.touch_point, "sentiment": item.sentiment,
        "score": item.score, "needs": [{"need": n.need, "sentiment": n.sentiment, "score": n.score} for n in item.needs],
        # What the drill-down filters on: the needs, and each need with its own polarity.
        "need_names": sorted({n for n, _ in polarities}), "need_sentiments": sorted({f"{n}:{s}" for n, s in polarities}),
        "nps": item.nps, "csat": item.csat, "excerpt": item.excerpt, "customer_id": item.customer_id,
        "expected": item.expected, "perceived": item.perceived,
    }


def item_from_doc(doc: dict[str, Any]) -> InsightItem:
    return InsightItem(
        item_id=doc["_id"], day=date.fromisoformat(doc["day"]), kind=doc["kind"], source=doc["source"],
        language=doc["language"], touch_point=doc["touch_point"], sentiment=doc.get("sentiment"),
        score=doc.get("score"), needs=tuple(NeedMention(n["need"], n["sentiment"], n["score"]) for n in doc["needs"]),
        nps=doc.get("nps"), csat=doc.get("csat"), excerpt=doc.get("excerpt", ""), customer_id=doc.get("customer_id"),
        expected=doc.get("expected"), perceived=doc.get("perceived"))


def item_public(item: InsightItem) -> dict[str, Any]:
    return {"id": item.item_id, "day": item.day.isoformat(), "kind": item.kind,
            "needs": [{"need": n.need, "sentiment": n.sentiment, "score": n.score} for n in item.needs],
            "sentiment": item.sentiment, "score": item.score, "language": item.language, "source": item.source,
            "touch_point": item.touch_point, "nps": item.nps, "csat": item.csat, "excerpt": item.excerpt,
            "customer_id": item.customer_id, "expected": item.expected, "perceived": item.perceived}


# ---- aggregation ---------------------------------------------------------------------------------------
RollupKey = tuple[str, str, str]  # day, dimension (or "all"), value


@dataclass
class Increments:
    """What a batch of new items adds to the aggregates (``$inc`` each key by its counters)."""

    rollups: dict[RollupKey, dict[str, float]] = field(default_factory=dict)
    #: Per rollup, the batch's most negative items for it (id, score), lowest first, at most WORST_KEPT.
    worst: dict[RollupKey, list[tuple[str, float]]] = field(default_factory=dict)
    #: The same two per ISO week, keyed by its Monday.
    weekly: dict[RollupKey, dict[str, float]] = field(default_factory=dict)
    weekly_worst: dict[RollupKey, list[tuple[str, float]]] = field(default_factory=dict)

    def keep_worst(self, key: RollupKey, item_id: str, score: float, *, weekly: bool = False) -> None:
        kept = (self.weekly_worst if weekly else self.worst).setdefault(key, [])
        kept.append((item_id, score))
        kept.sort(key=lambda pair: pair[1])
        del kept[WORST_KEPT:]


def _add(into: dict[Any, dict[str, float]], key: Any, counters: dict[str, float]) -> None:
    row = into.setdefault(key, {})
    for name, value in counters.items():
        if value:
            row[name] = row.get(name, 0) + value


def _counters(item: InsightItem, sentiment: str | None) -> dict[str, float]:
    """The counters one item adds to a row, ``sentiment`` being the polarity that counts for the row."""
    out: dict[str, float] = {}
    if sentiment is not None:
        out["items"] = 1
        out[sentiment] = 1
        out["sentiment_sum"] = item.score or 0.0
    group = item.nps_group
    if group is not None:
        out["answers"] = 1
        out[{"promoter": "promoters", "passive": "passives", "detractor": "detractors"}[group]] = 1
    if item.csat is not None:
        out["csat_sum"] = item.csat
        out["csat_count"] = 1
    if item.expected is not None:
        out["expected_sum"] = item.expected
        out["expected_count"] = 1
    if item.perceived is not None:
        out["perceived_sum"] = item.perceived
        out["perceived_count"] = 1
    if item.expected is not None and item.perceived is not None:
        out["gap_sum"] = item.perceived - item.expected
        out["gap_count"] = 1
    return out


def increments(items: Iterable[InsightItem]) -> Increments:
    inc = Increments()
    for item in items:
        day = item.day.isoformat()
        polarities = item.need_polarities()
        whole = _counters(item, item.sentiment)
        _add(inc.rollups, (day, ALL, ALL), whole)
        for dimension in ("language", "source", "touch_point"):
            key = (day, dimension, getattr(item, dimension))
            _add(inc.rollups, key, whole)
            if item.sentiment == "negative":
                inc.keep_worst(key, item.item_id, item.score or 0.0)
        # Per need, the need's own polarity; the NPS counters say which needs detractors mention.
        for need, sentiment in polarities:
            _add(inc.rollups, (day, "need", need), _counters(item, sentiment))
            if sentiment == "negative":
                inc.keep_worst((day, "need", need), item.item_id, item.score or 0.0)
    # The same per ISO week (keyed by its Monday), summed from the days.
    for (day, dimension, value), counters in inc.rollups.items():
        _add(inc.weekly, (monday_of(date.fromisoformat(day)).isoformat(), dimension, value), counters)
    for (day, dimension, value), pairs in inc.worst.items():
        key = (monday_of(date.fromisoformat(day)).isoformat(), dimension, value)
        for item_id, score in pairs:
            inc.keep_worst(key, item_id, score, weekly=True)
    return inc


# ---- the report ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RollupRow:
    day: date
    dimension: str
    value: str
    counters: dict[str, float]
    #: The day's most negative items for this value: (id, score).
    worst: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def weeks(self) -> list[date]:
        """The Monday of each week the period touches."""
        first = monday_of(self.start)
        return [first + timedelta(days=7 * i) for i in range((self.end - first).days // 7 + 1)]

    def plan(self) -> tuple[list[date], list[date]]:
        """What to read for the period: the Mondays of the weeks wholly inside it (weekly rollups), and the
        days at its edges outside those weeks (daily rollups)."""
        full = [w for w in self.weeks() if w >= self.start and w + timedelta(days=6) <= self.end]
        covered = {w + timedelta(days=d) for w in full for d in range(7)}
        loose = [self.start + timedelta(days=d) for d in range(self.days)
                 if self.start + timedelta(days=d) not in covered]
        return full, loose


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


class BadRange(ValueError):
    pass


def period_of(start: date | None, end: date | None, today: date) -> Period:
    """The range asked for: by default the last 8 weeks (this one and the 7 before it) up to today; refused
    when reversed or over a year."""
    end = end or today
    try:  # the default start, the weeks' Mondays and the period before must be dates too (not before year 1)
        start = start or monday_of(end) - timedelta(days=7 * (DEFAULT_WEEKS - 1))
        if start > end:
            raise BadRange("from is after to")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise BadRange(f"the range is over {MAX_RANGE_DAYS} days")
        period = Period(start, end)
        period.previous()
        period.weeks()
    except OverflowError:
        # to=0001-01-01 alone was a 500 (schemathesis): its default start, 7 weeks earlier, is no date.
        raise BadRange("the range starts too early") from None
    return period


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _summary(c: dict[str, float]) -> dict[str, Any]:
    answers, items = c.get("answers", 0), c.get("items", 0)
    return {
        "items": int(items), "negative": int(c.get("negative", 0)), "neutral": int(c.get("neutral", 0)),
        "positive": int(c.get("positive", 0)),
        "negative_share": _ratio(c.get("negative", 0), items),
        "net_sentiment": _ratio(c.get("positive", 0) - c.get("negative", 0), items),
        "mean_sentiment": _ratio(c.get("sentiment_sum", 0), items),
        "answers": int(answers), "promoters": int(c.get("promoters", 0)), "passives": int(c.get("passives", 0)),
        "detractors": int(c.get("detractors", 0)),
        "nps": round(100 * (c.get("promoters", 0) - c.get("detractors", 0)) / answers, 1) if answers else None,
        "csat_answers": int(c.get("csat_count", 0)), "csat": _ratio(c.get("csat_sum", 0), c.get("csat_count", 0)),
    }


def _mean(total: float, count: float) -> float | None:
    return round(total / count, 2) if count else None


def expectation_gaps(rows: Iterable[RollupRow]) -> list[dict[str, Any]]:
    """SUR-3, per touch point: the mean feeling answers expected and the mean they perceived (each over the
    answers that rated it), and the gap: the mean of perceived minus expected over the answers that rated
    both (``answers``); below zero, the touch point fell short. Worst gap first; touch points no answer
    rated are left out."""
    per_touch_point: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        if row.dimension == "touch_point":
            target = per_touch_point[row.value]
            for name in ("expected_sum", "expected_count", "perceived_sum", "perceived_count", "gap_sum", "gap_count"):
                target[name] = target.get(name, 0) + row.counters.get(name, 0)
    gaps = [{"touch_point": touch_point, "expected": _mean(c["expected_sum"], c["expected_count"]),
             "expected_answers": int(c["expected_count"]), "perceived": _mean(c["perceived_sum"], c["perceived_count"]),
             "perceived_answers": int(c["perceived_count"]), "gap": _mean(c["gap_sum"], c["gap_count"]),
             "answers": int(c["gap_count"])}
            for touch_point, c in per_touch_point.items() if c["expected_count"] or c["perceived_count"]]
    # The widest shortfall first; a touch point with no pair (so no gap) after those with one.
    return sorted(gaps, key=lambda g: (g["gap"] is None, g["gap"] if g["gap"] is not None else 0.0, g["touch_point"]))


def _sum(rows: Iterable[RollupRow]) -> dict[str, float]:
    total: dict[str, float] = {}
    for row in rows:
        for name, value in row.counters.items():
            total[name] = total.get(name, 0) + value
    return total


def report(rows: Sequence[RollupRow], period: Period, by: Dimension,
           lookup: Callable[[list[str]], dict[str, InsightItem]]) -> dict[str, Any]:
    """``GET /v1/insights``' answer from the rollups of ``period`` and the one before it (dimension ``by``,
    ``need`` for the drivers, and ``all``). ``lookup(ids)``: the stored items of those ids (the rising
    groups' most negative items, for their excerpts)."""
    weeks = period.weeks()
    previous = period.previous()

    def week_of(day: date) -> int:
        return (day - weeks[0]).days // 7

    current = [r for r in rows if period.start <= r.day <= period.end]
    before = [r for r in rows if previous.start <= r.day <= previous.end]

    # Negative share per group per week.
    by_group: dict[str, list[dict[str, float]]] = {}
    for row in current:
        if row.dimension == by:
            weekly = by_group.setdefault(row.value, [{} for _ in weeks])
            target = weekly[week_of(row.day)]
            for name, value in row.counters.items():
                target[name] = target.get(name, 0) + value
    series = []
    for group in sorted(by_group, key=lambda g: (-sum(w.get("negative", 0) for w in by_group[g]), g)):
        weekly = by_group[group]
        series.append({"group": group, "negative_share": [_ratio(w.get("negative", 0), w.get("items", 0)) for w in weekly],
                       "negative": [int(w.get("negative", 0)) for w in weekly],
                       "items": [int(w.get("items", 0)) for w in weekly]})

    # NPS, CSAT and net sentiment per week, over everything.
    weekly_all: list[list[RollupRow]] = [[] for _ in weeks]
    for row in current:
        if row.dimension == ALL:
            weekly_all[week_of(row.day)].append(row)
    summaries = [_summary(_sum(w)) for w in weekly_all]
    scores = {key: [s[key] for s in summaries] for key in ("nps", "csat", "net_sentiment", "answers", "csat_answers",
                                                           "items")}

    # What rose: negative count per group against the previous period of the same length.
    def negatives(rs: Iterable[RollupRow]) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for r in rs:
            if r.dimension == by:
                out[r.value] += int(r.counters.get("negative", 0))
        return out

    now_neg, before_neg = negatives(current), negatives(before)
    deltas = sorted(((g, now_neg[g] - before_neg.get(g, 0)) for g in now_neg), key=lambda gd: (-gd[1], gd[0]))
    risen = [(g, d) for g, d in deltas[:RISING_GROUPS] if d > 0]
    worst_of = {g: sorted({pair for r in current if r.dimension == by and r.value == g for pair in r.worst},
                          key=lambda pair: (pair[1], pair[0]))[:TOP_ITEMS] for g, _ in risen}
    found = lookup(sorted({i for pairs in worst_of.values() for i, _ in pairs})) if risen else {}
    rising = [{"group": g, "negative": now_neg[g], "previous_negative": before_neg.get(g, 0), "delta": d,
               "top_items": [{"id": i, "day": found[i].day.isoformat(), "score": score, "excerpt": found[i].excerpt}
                             for i, score in worst_of[g] if i in found]}
              for g, d in risen]

    # Drivers: which needs detractors mention, against promoters.
    whole = _sum(r for r in current if r.dimension == ALL)
    need_rows: dict[str, dict[str, float]] = defaultdict(dict)
    for row in current:
        if row.dimension == "need":
            for name in ("detractors", "promoters", "passives"):
                need_rows[row.value][name] = need_rows[row.value].get(name, 0) + row.counters.get(name, 0)
    detractors, promoters = whole.get("detractors", 0), whole.get("promoters", 0)
    drivers: list[dict[str, Any]] = sorted(
        ({"need": need, "detractors": int(c.get("detractors", 0)), "promoters": int(c.get("promoters", 0)),
          "detractor_share": _ratio(c.get("detractors", 0), detractors),
          "promoter_share": _ratio(c.get("promoters", 0), promoters)}
         for need, c in need_rows.items() if c.get("detractors", 0) or c.get("promoters", 0)),
        # What most detractors mention first; of two alike, the one fewer promoters mention.
        key=lambda d: (-float(d["detractor_share"] or 0), float(d["promoter_share"] or 0), str(d["need"])))

    return {"from": period.start.isoformat(), "to": period.end.isoformat(), "by": by,
            "previous": {"from": previous.start.isoformat(), "to": previous.end.isoformat()},
            "weeks": [w.isoformat() for w in weeks], "series": series, "scores": scores, "rising": rising,
            "drivers": drivers, "expectations": expectation_gaps(current), "totals": _summary(whole)}


# ---- drill-down ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemQuery:
    period: Period
    need: str | None = None
    language: str | None = None
    source: str | None = None
    touch_point: str | None = None
    sentiment: str | None = None
    limit: int = 50

    def matches(self, item: InsightItem) -> bool:
        """The same filter the store applies: a need with a sentiment is that need with that polarity."""
        if not self.period.start <= item.day <= self.period.end:
            return False
        if any(v is not None and getattr(item, k) != v for k, v in
               (("language", self.language), ("source", self.source), ("touch_point", self.touch_point))):
            return False
        polarities = item.need_polarities()
        if self.need is not None and self.sentiment is not None:
            return (self.need, self.sentiment) in polarities
        if self.need is not None:
            return any(n == self.need for n, _ in polarities)
        return self.sentiment is None or item.sentiment == self.sentiment


def rollup_rows(docs: Iterable[dict[str, Any]]) -> list[RollupRow]:
    return [RollupRow(date.fromisoformat(d["day"]), d["dimension"], d["value"],
                      {k: d[k] for k in COUNTERS if k in d},
                      tuple((w["id"], w["score"]) for w in d.get("worst", ()))) for d in docs]


def rollup_dimensions(by: Dimension) -> list[str]:
    """The rollups a report on ``by`` reads (touch points always: their expectation gaps)."""
    return sorted({by, "need", "touch_point", ALL})
