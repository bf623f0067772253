"""The labelled sets keep the rule that makes ``make eval`` honest: evaluation texts are not training texts."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[3] / "services" / "sentiment" / "src" / "sentiment_training" / "data"


def _items(name: str) -> list[dict[str, Any]]:
    with (DATA / name).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _normalised(text: str) -> str:
    """Case, punctuation, emoji and spacing removed: a copy with a changed full stop is still a copy."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def test_train_and_eval_texts_and_ids_are_disjoint() -> None:
    train, evaluation = _items("train.jsonl"), _items("eval.jsonl")
    assert {_normalised(i["text"]) for i in train}.isdisjoint({_normalised(i["text"]) for i in evaluation})
    assert {i["id"] for i in train}.isdisjoint({i["id"] for i in evaluation})
    assert all(i["id"].startswith("train-") for i in train)
    assert all(i["id"].startswith("eval-") for i in evaluation)


#: As in data/README.md: 120 per language, then a third round of items written for the project.
TRAIN_PER_LANGUAGE = {"en": 200, "ru": 200, "es": 200, "de": 200, "fr": 200, "tr": 210, "az": 210, "kk": 220,
                      "uz": 280, "ka": 220, "hy": 210}


def test_sets_have_the_documented_sizes() -> None:
    train, evaluation = _items("train.jsonl"), _items("eval.jsonl")
    assert Counter(i["lang"] for i in train) == TRAIN_PER_LANGUAGE
    assert set(Counter(i["lang"] for i in evaluation).values()) == {30}
    assert len(Counter(i["lang"] for i in train)) == 11
    assert len({i["id"] for i in train}) == len(train)


def test_train_keeps_the_sentiment_mix_in_every_language() -> None:
    """Roughly 40% negative, 30% neutral, 30% positive per language (within 5 points), as in eval."""
    train = _items("train.jsonl")
    for lang in {i["lang"] for i in train}:
        labels = Counter(i["label"] for i in train if i["lang"] == lang)
        total = sum(labels.values())
        for label, share in (("negative", 0.40), ("neutral", 0.30), ("positive", 0.30)):
            assert abs(labels[label] / total - share) <= 0.05, (lang, label, labels)
