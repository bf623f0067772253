"""``python -m sentiment_training.evaluate`` (``make eval``): score the held-out labelled set and print what a person
can act on: per-language accuracy and macro-F1 for our scorer beside VADER, needs micro-F1, and speed.

``eval.jsonl`` is only ever measured here; nothing is trained or tuned on it (see ``sentiment_training.train``).
The exit status is 1 when a quality target is missed, so the target works as a gate; the table and
``build/eval/results.json`` are written either way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment.scoring import LABELS

#: Targets from the issue "Sentiment stage: multilingual scores people can act on".
TARGET_OVERALL_ACCURACY = 0.85
TARGET_LANGUAGE_ACCURACY = 0.75
TARGET_NEEDS_MICRO_F1 = 0.60

#: VADER's documented cut-offs on its compound score.
VADER_POSITIVE_FROM = 0.05
VADER_NEGATIVE_TO = -0.05

#: The labelled sets live in this package (``data/``), beside the code that reads them.
DATA_DIR = Path(__file__).resolve().parent / "data"


def default_data_file(name: str) -> Path:
    """A labelled file of this package: ``train.jsonl`` or ``eval.jsonl``."""
    return DATA_DIR / name


def read_items(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# -- metrics (plain Python, so they are easy to check by hand) --------------------------------------


def accuracy(y_true: Sequence[Hashable], y_pred: Sequence[Hashable]) -> float:
    """Share of items whose predicted label equals the true one."""
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    if not y_true:
        raise ValueError("no items")
    return float(sum(bool(t == p) for t, p in zip(y_true, y_pred, strict=True)) / len(y_true))


def f1_from_counts(tp: int, fp: int, fn: int) -> float:
    """F1 = 2TP / (2TP + FP + FN); 1.0 when there was nothing to find and nothing was found."""
    denominator = 2 * tp + fp + fn
    return 1.0 if denominator == 0 else float(2 * tp / denominator)


def macro_f1(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], labels: Iterable[Hashable] = LABELS
) -> float:
    """Unweighted mean of the per-class F1 scores, over the classes that occur in the truth or the
    predictions (a class absent from both says nothing about the scorer, so it is left out)."""
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    present = [c for c in labels if c in set(y_true) | set(y_pred)]
    if not present:
        raise ValueError("no items")
    scores = []
    for c in present:
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred, strict=True))
        fp = sum(t != c and p == c for t, p in zip(y_true, y_pred, strict=True))
        fn = sum(t == c and p != c for t, p in zip(y_true, y_pred, strict=True))
        scores.append(f1_from_counts(tp, fp, fn))
    return sum(scores) / len(scores)


def micro_f1(true_sets: Sequence[Iterable[Hashable]], pred_sets: Sequence[Iterable[Hashable]]) -> float:
    """Micro-averaged F1 of multi-label tags: true/false positives and misses pooled over all items."""
    if len(true_sets) != len(pred_sets):
        raise ValueError("true_sets and pred_sets differ in length")
    tp = fp = fn = 0
    for truth, predicted in zip(true_sets, pred_sets, strict=True):
        t, p = set(truth), set(predicted)
        tp += len(t & p)
        fp += len(p - t)
        fn += len(t - p)
    return f1_from_counts(tp, fp, fn)


def confusion(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] = LABELS) -> dict[str, dict[str, int]]:
    """Counts of true label -> predicted label, for reading where a scorer errs (rows: truth)."""
    table = {t: dict.fromkeys(labels, 0) for t in labels}
    for t, p in zip(y_true, y_pred, strict=True):
        table[t][p] += 1
    return table


def vader_label(compound: float) -> str:
    """VADER's usual 3-way reading of its compound score."""
    if compound >= VADER_POSITIVE_FROM:
        return "positive"
    if compound <= VADER_NEGATIVE_TO:
        return "negative"
    return "neutral"


# -- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    n: int
    ours_accuracy: float
    ours_macro_f1: float
    ours_needs_micro_f1: float
    vader_accuracy: float
    vader_macro_f1: float


def build_rows(
    items: Sequence[dict[str, Any]], ours: Sequence[str], ours_needs: Sequence[Sequence[str]], vader: Sequence[str]
) -> list[Row]:
    """One row per language (sorted), then ``all`` (every item) and ``lang-mean`` (mean of the languages)."""
    rows = []
    for lang in sorted({item["lang"] for item in items}):
        idx = [i for i, item in enumerate(items) if item["lang"] == lang]
        rows.append(_row(lang, [items[i] for i in idx], [ours[i] for i in idx],
                         [ours_needs[i] for i in idx], [vader[i] for i in idx]))
    languages = list(rows)
    rows.append(_row("all", items, ours, ours_needs, vader))
    rows.append(Row(
        name="lang-mean", n=len(items),
        ours_accuracy=_mean(r.ours_accuracy for r in languages),
        ours_macro_f1=_mean(r.ours_macro_f1 for r in languages),
        ours_needs_micro_f1=_mean(r.ours_needs_micro_f1 for r in languages),
        vader_accuracy=_mean(r.vader_accuracy for r in languages),
        vader_macro_f1=_mean(r.vader_macro_f1 for r in languages),
    ))
    return rows


def _mean(values: Iterable[float]) -> float:
    listed = list(values)
    return sum(listed) / len(listed)


def _row(
    name: str, items: Sequence[dict[str, Any]], ours: Sequence[str], ours_needs: Sequence[Sequence[str]],
    vader: Sequence[str],
) -> Row:
    truth = [item["label"] for item in items]
    return Row(
        name=name, n=len(items),
        ours_accuracy=accuracy(truth, ours), ours_macro_f1=macro_f1(truth, ours),
        ours_needs_micro_f1=micro_f1([item["needs"] for item in items], ours_needs),
        vader_accuracy=accuracy(truth, vader), vader_macro_f1=macro_f1(truth, vader),
    )


def missed_targets(rows: Sequence[Row]) -> list[str]:
    """The targets this evaluation misses, in words (empty when all are met)."""
    by_name = {r.name: r for r in rows}
    missed = []
    overall = by_name["all"]
    if overall.ours_accuracy < TARGET_OVERALL_ACCURACY:
        missed.append(f"overall accuracy {overall.ours_accuracy:.3f} < {TARGET_OVERALL_ACCURACY}")
    for r in rows:
        if r.name not in ("all", "lang-mean") and r.ours_accuracy < TARGET_LANGUAGE_ACCURACY:
            missed.append(f"{r.name} accuracy {r.ours_accuracy:.3f} < {TARGET_LANGUAGE_ACCURACY}")
    if overall.ours_needs_micro_f1 < TARGET_NEEDS_MICRO_F1:
        missed.append(f"needs micro-F1 {overall.ours_needs_micro_f1:.3f} < {TARGET_NEEDS_MICRO_F1}")
    return missed


def format_table(rows: Sequence[Row]) -> str:
    header = (f"{'lang':<10}{'n':>5} | {'ours acc':>9}{'ours mF1':>9}{'needs µF1':>10} |"
              f" {'VADER acc':>9}{'VADER mF1':>10}{'needs µF1':>10}")
    lines = [header, "-" * len(header)]
    for r in rows:
        if r.name == "all":
            lines.append("-" * len(header))
        lines.append(
            f"{r.name:<10}{r.n:>5} | {r.ours_accuracy:>9.3f}{r.ours_macro_f1:>9.3f}{r.ours_needs_micro_f1:>10.3f} |"
            f" {r.vader_accuracy:>9.3f}{r.vader_macro_f1:>10.3f}{'-':>10}"
        )
    return "\n".join(lines)


def cpu_threads(requested: int | None) -> int:
    """Threads the embedding uses: the requested number, or every usable core (as ``E5Encoder``)."""
    return requested or len(os.sched_getaffinity(0))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sentiment_training.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--eval-file", type=Path, default=default_data_file("eval.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("build") / "eval" / "results.json")
    parser.add_argument("--batch-size", type=int, default=32, help="the service's default batch")
    parser.add_argument("--threads", type=int, default=None, help="embedding threads (default: every core)")
    args = parser.parse_args(argv)

    # Imported here so the metric functions above stay importable without the model or VADER.
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # type: ignore[import-untyped]

    from sentiment.model import SentimentModel

    items = read_items(args.eval_file)
    texts = [item["text"] for item in items]
    model = SentimentModel(embed_threads=args.threads)
    model.score(texts[:2])  # warm-up, so one-off initialisation is not counted as scoring time
    started = time.perf_counter()
    scored = []
    for start in range(0, len(texts), args.batch_size):
        batch = items[start:start + args.batch_size]
        scored.extend(model.score([i["text"] for i in batch], [i["lang"] for i in batch]))
    seconds = time.perf_counter() - started

    analyzer = SentimentIntensityAnalyzer()
    vader = [vader_label(float(analyzer.polarity_scores(text)["compound"])) for text in texts]
    ours = [s.sentiment.label for s in scored]
    ours_needs = [[n.need for n in s.needs] for s in scored]
    rows = build_rows(items, ours, ours_needs, vader)
    missed = missed_targets(rows)
    threads = cpu_threads(args.threads)
    texts_per_second = len(texts) / seconds

    print(f"Evaluation set: {args.eval_file} ({len(items)} items) — model {model.version}")
    print(format_table(rows))
    print(f"Speed: {texts_per_second:.1f} texts/s ({len(texts)} texts in {seconds:.2f} s, batches of "
          f"{args.batch_size}, {threads} CPU threads; model load excluded)")
    print(f"Targets: overall accuracy >= {TARGET_OVERALL_ACCURACY}, every language >= "
          f"{TARGET_LANGUAGE_ACCURACY}, needs micro-F1 >= {TARGET_NEEDS_MICRO_F1}: "
          + ("met" if not missed else "MISSED: " + "; ".join(missed)))

    language_id = accuracy([i["lang"] for i in items], [s.language.code for s in scored])
    results = {
        "eval_file": str(args.eval_file),
        "items": len(items),
        "model_version": model.version,
        "rows": [r.__dict__ for r in rows],
        "needs_micro_f1": {"ours": next(r for r in rows if r.name == "all").ours_needs_micro_f1, "vader": None},
        "language_id_accuracy": language_id,
        "confusion": {"rows_are": "true label", "ours": confusion([i["label"] for i in items], ours),
                      "vader": confusion([i["label"] for i in items], vader)},
        "speed": {"texts_per_second": texts_per_second, "seconds": seconds, "batch_size": args.batch_size,
                  "cpu_threads": threads},
        "targets": {"overall_accuracy": TARGET_OVERALL_ACCURACY, "language_accuracy": TARGET_LANGUAGE_ACCURACY,
                    "needs_micro_f1": TARGET_NEEDS_MICRO_F1},
        "missed_targets": missed,
        "passed": not missed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"Wrote {args.out}")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
