"""The evaluation's metrics, checked on examples small enough to work out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from sentiment_training.evaluate import (
    Row,
    accuracy,
    build_rows,
    confusion,
    format_table,
    macro_f1,
    micro_f1,
    missed_targets,
    need_sentiment_accuracy,
    needs_macro_f1,
    per_need_scores,
    recall,
    script_of,
    vader_label,
)


def test_accuracy() -> None:
    assert accuracy(["a", "b", "c", "a"], ["a", "b", "a", "a"]) == pytest.approx(0.75)
    assert accuracy(["x"], ["x"]) == 1.0
    with pytest.raises(ValueError):
        accuracy(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        accuracy([], [])


def test_macro_f1() -> None:
    truth = ["negative", "negative", "neutral", "positive"]
    predicted = ["negative", "neutral", "neutral", "negative"]
    # negative: tp 1, fp 1, fn 1 -> 0.5; neutral: tp 1, fp 1, fn 0 -> 2/3; positive: tp 0, fn 1 -> 0
    assert macro_f1(truth, predicted) == pytest.approx((0.5 + 2 / 3 + 0.0) / 3)
    assert macro_f1(truth, truth) == 1.0
    # A class absent from both the truth and the predictions is left out, not counted as 0 or 1.
    assert macro_f1(["negative", "positive"], ["negative", "negative"]) == pytest.approx((2 / 3 + 0.0) / 2)


def test_micro_f1_pools_counts_over_items() -> None:
    truth = [["price"], ["reliability", "performance"], []]
    predicted = [["price", "fairness"], ["reliability"], []]
    # tp 2 (price, reliability), fp 1 (fairness), fn 1 (performance) -> 4 / 6
    assert micro_f1(truth, predicted) == pytest.approx(4 / 6)
    assert micro_f1([[]], [[]]) == 1.0
    assert micro_f1([["price"]], [[]]) == 0.0


def test_vader_cut_offs() -> None:
    assert vader_label(0.05) == "positive"
    assert vader_label(-0.05) == "negative"
    assert vader_label(0.0) == "neutral"
    assert vader_label(0.049) == "neutral"


def _item(lang: str, label: str, needs: list[str]) -> dict[str, Any]:
    return {"lang": lang, "label": label, "needs": needs}


def test_rows_targets_and_table() -> None:
    items = [_item("en", "negative", ["price"]), _item("en", "positive", []),
             _item("ka", "neutral", ["information"]), _item("ka", "negative", [])]
    ours = ["negative", "positive", "neutral", "neutral"]
    needs = [["price"], [], ["information"], ["price"]]
    vader = ["neutral"] * 4
    rows = build_rows(items, ours, needs, vader)
    assert [r.name for r in rows] == ["en", "ka", "all", "lang-mean"]
    by_name = {r.name: r for r in rows}
    assert by_name["en"].ours_accuracy == 1.0
    assert by_name["ka"].ours_accuracy == 0.5
    assert by_name["all"].ours_accuracy == 0.75
    assert by_name["all"].ours_needs_micro_f1 == pytest.approx(2 * 2 / (2 * 2 + 1))
    assert by_name["all"].vader_accuracy == 0.25
    missed = missed_targets(rows)
    assert any("overall accuracy" in m for m in missed)
    assert any(m.startswith("ka accuracy") for m in missed)
    assert not any(m.startswith("en ") for m in missed)
    table = format_table(rows)
    assert "VADER" in table and "lang-mean" in table
    assert table.splitlines()[-1].rstrip().endswith("-")  # VADER has no needs column


def test_no_target_missed_when_everything_is_right() -> None:
    rows = [Row("en", 30, 0.9, 0.9, 0.8, 0.5, 0.4), Row("all", 30, 0.9, 0.9, 0.8, 0.5, 0.4)]
    assert missed_targets(rows, neutral_recall=0.7, script_variant_accuracy=0.8) == []
    missed = missed_targets(rows, neutral_recall=0.69, script_variant_accuracy=0.79)
    assert [m.split()[0] for m in missed] == ["neutral", "script-variant"]


def test_confusion_counts_truth_by_prediction() -> None:
    table = confusion(["negative", "negative", "positive"], ["negative", "neutral", "positive"])
    assert table["negative"] == {"negative": 1, "neutral": 1, "positive": 0}
    assert table["positive"]["positive"] == 1
    assert sum(sum(row.values()) for row in table.values()) == 3


def test_recall_of_one_label() -> None:
    truth = ["neutral", "neutral", "negative", "neutral"]
    predicted = ["neutral", "negative", "negative", "positive"]
    assert recall(truth, predicted, "neutral") == pytest.approx(1 / 3)
    assert recall(truth, predicted, "negative") == 1.0
    with pytest.raises(ValueError):
        recall(truth, predicted, "positive")


def test_per_need_precision_recall_and_macro_f1() -> None:
    truth = [["price", "empathy"], ["price"], []]
    predicted = [["price"], ["price", "fairness"], ["empathy"]]
    scores = per_need_scores(truth, predicted, needs=("price", "empathy", "fairness", "design"))
    assert scores["price"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2, "predicted": 2}
    # empathy: one true (missed), one predicted (wrong): tp 0
    assert scores["empathy"]["precision"] == 0.0 and scores["empathy"]["recall"] == 0.0
    assert scores["fairness"]["support"] == 0 and scores["fairness"]["f1"] == 0.0
    # design is neither true nor predicted: left out of the macro mean (price 1, empathy 0, fairness 0)
    assert needs_macro_f1(scores) == pytest.approx(1 / 3)


def test_need_sentiment_is_scored_on_the_needs_found() -> None:
    items = [
        {"label": "negative", "needs": ["price", "performance"], "need_sentiments": {"performance": "positive"}},
        {"label": "positive", "needs": ["empathy"]},
    ]
    predicted = [[("price", "negative"), ("performance", "negative"), ("design", "negative")],
                 [("empathy", "positive")]]
    # design is not a true need, so its polarity is not scored; performance's own polarity is positive
    assert need_sentiment_accuracy(items, predicted) == (pytest.approx(2 / 3), 3)
    assert need_sentiment_accuracy(items, predicted, mixed_only=True) == (0.5, 2)


def test_rows_by_script_variant() -> None:
    items = [{"lang": "uz", "label": "negative", "needs": [], "script": "cyrillic"},
             {"lang": "uz", "label": "positive", "needs": []},
             {"lang": "ka", "label": "neutral", "needs": [], "script": "translit"}]
    assert [script_of(i) for i in items] == ["cyrillic", "native", "translit"]
    rows = build_rows(items, ["negative", "negative", "neutral"], [[], [], []], ["neutral"] * 3, group="script")
    assert [r.name for r in rows] == ["cyrillic", "native", "translit", "all", "script-mean"]
    assert {r.name: r.ours_accuracy for r in rows}["native"] == 0.0
