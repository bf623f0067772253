"""``python -m sentiment_training.evaluate`` (``make eval``): score the held-out labelled set and print what a
person can act on: accuracy per language and per script variant (ours beside VADER), neutral recall, needs
micro- and macro-F1 with precision and recall per need, per-need sentiment, language identification, speed.

``eval.jsonl`` is only ever measured here; nothing is trained or tuned on it (see ``sentiment_training.train``).
The exit status is 1 when a quality target is missed, so the target works as a gate; the table and
``build/eval/results.json`` are written either way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feedback_shared.events import NEEDS
from sentiment.scoring import LABELS

#: Targets from issue 17 ("customer needs that hold ..., neutral that is recognised, and the scripts people
#: really type in").
TARGET_OVERALL_ACCURACY = 0.88
TARGET_LANGUAGE_ACCURACY = 0.80
TARGET_NEEDS_MICRO_F1 = 0.75
TARGET_NEUTRAL_RECALL = 0.70
TARGET_SCRIPT_VARIANT_ACCURACY = 0.80

#: An item without a ``script`` field is typed in its language's usual script (see NEEDS_GUIDE.md).
NATIVE_SCRIPT = "native"

#: VADER's documented cut-offs on its compound score.
VADER_POSITIVE_FROM = 0.05
VADER_NEGATIVE_TO = -0.05

#: The labelled sets live in this package (``data/``), beside the code that reads them.
DATA_DIR = Path(__file__).resolve().parent / "data"


#: The figures ``make eval`` last recorded (``--record``); a unit test fails when the model falls more than
#: ``ALLOWED_DROP`` below them on the same evaluation file.
RECORDED_FILE = Path(__file__).resolve().parent / "recorded_eval.json"
ALLOWED_DROP = 0.02


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


def script_of(item: dict[str, Any]) -> str:
    return str(item.get("script", NATIVE_SCRIPT))


def build_rows(
    items: Sequence[dict[str, Any]], ours: Sequence[str], ours_needs: Sequence[Sequence[str]], vader: Sequence[str],
    *, group: str = "lang",
) -> list[Row]:
    """One row per value of ``group`` (``lang`` or ``script``; sorted), then ``all`` (every item) and
    ``<group>-mean`` (the mean of the groups)."""
    rows = []
    for value in sorted({_group_value(item, group) for item in items}):
        idx = [i for i, item in enumerate(items) if _group_value(item, group) == value]
        rows.append(_row(value, [items[i] for i in idx], [ours[i] for i in idx],
                         [ours_needs[i] for i in idx], [vader[i] for i in idx]))
    groups = list(rows)
    rows.append(_row("all", items, ours, ours_needs, vader))
    rows.append(Row(
        name=f"{group}-mean", n=len(items),
        ours_accuracy=_mean(r.ours_accuracy for r in groups),
        ours_macro_f1=_mean(r.ours_macro_f1 for r in groups),
        ours_needs_micro_f1=_mean(r.ours_needs_micro_f1 for r in groups),
        vader_accuracy=_mean(r.vader_accuracy for r in groups),
        vader_macro_f1=_mean(r.vader_macro_f1 for r in groups),
    ))
    return rows


def _group_value(item: dict[str, Any], group: str) -> str:
    return script_of(item) if group == "script" else str(item[group])


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


def recall(y_true: Sequence[Hashable], y_pred: Sequence[Hashable], label: Hashable) -> float:
    """Share of the items truly labelled ``label`` that were predicted as ``label``."""
    hits = [p == label for t, p in zip(y_true, y_pred, strict=True) if t == label]
    if not hits:
        raise ValueError(f"no item is labelled {label!r}")
    return float(sum(hits) / len(hits))


def per_need_scores(
    true_sets: Sequence[Iterable[str]], pred_sets: Sequence[Iterable[str]], needs: Sequence[str] = NEEDS
) -> dict[str, dict[str, float]]:
    """Precision, recall and F1 of every need, with its support (true tags) and predicted count.
    Precision of a need never predicted and recall of a need never true are 0 by convention (its F1 says
    whether anything went wrong: 1.0 when it was neither true nor predicted)."""
    scores = {}
    for need in needs:
        tp = fp = fn = 0
        for truth, predicted in zip(true_sets, pred_sets, strict=True):
            t, p = need in set(truth), need in set(predicted)
            tp += t and p
            fp += p and not t
            fn += t and not p
        scores[need] = {
            "precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
            "f1": f1_from_counts(tp, fp, fn), "support": tp + fn, "predicted": tp + fp,
        }
    return scores


def needs_macro_f1(per_need: dict[str, dict[str, float]]) -> float:
    """Mean F1 over the needs that are true or predicted somewhere (as ``macro_f1`` for the labels)."""
    present = [s["f1"] for s in per_need.values() if s["support"] or s["predicted"]]
    if not present:
        raise ValueError("no need is true or predicted")
    return sum(present) / len(present)


def true_need_sentiment(item: dict[str, Any], need: str) -> str:
    """A need's own polarity in the data: ``need_sentiments`` where the writer wrote one that differs,
    else the overall label (see NEEDS_GUIDE.md)."""
    return str(item.get("need_sentiments", {}).get(need, item["label"]))


def need_sentiment_accuracy(
    items: Sequence[dict[str, Any]], predicted: Sequence[Sequence[tuple[str, str]]], *, mixed_only: bool = False
) -> tuple[float | None, int]:
    """(accuracy, count) of the polarity given to each correctly found need; with ``mixed_only``, only the
    needs of items whose ``need_sentiments`` make a need's polarity differ from the overall label's."""
    hits = []
    for item, found in zip(items, predicted, strict=True):
        if mixed_only and not item.get("need_sentiments"):
            continue
        for need, sentiment in found:
            if need in item["needs"]:
                hits.append(sentiment == true_need_sentiment(item, need))
    return (sum(hits) / len(hits) if hits else None), len(hits)


def missed_targets(
    rows: Sequence[Row], *, neutral_recall: float | None = None, script_variant_accuracy: float | None = None
) -> list[str]:
    """The targets this evaluation misses, in words (empty when all are met). ``rows`` are the language
    rows (``build_rows`` with the default group)."""
    by_name = {r.name: r for r in rows}
    missed = []
    overall = by_name["all"]
    if overall.ours_accuracy < TARGET_OVERALL_ACCURACY:
        missed.append(f"overall accuracy {overall.ours_accuracy:.3f} < {TARGET_OVERALL_ACCURACY}")
    for r in rows:
        if r.name != "all" and not r.name.endswith("-mean") and r.ours_accuracy < TARGET_LANGUAGE_ACCURACY:
            missed.append(f"{r.name} accuracy {r.ours_accuracy:.3f} < {TARGET_LANGUAGE_ACCURACY}")
    if overall.ours_needs_micro_f1 < TARGET_NEEDS_MICRO_F1:
        missed.append(f"needs micro-F1 {overall.ours_needs_micro_f1:.3f} < {TARGET_NEEDS_MICRO_F1}")
    if neutral_recall is not None and neutral_recall < TARGET_NEUTRAL_RECALL:
        missed.append(f"neutral recall {neutral_recall:.3f} < {TARGET_NEUTRAL_RECALL}")
    if script_variant_accuracy is not None and script_variant_accuracy < TARGET_SCRIPT_VARIANT_ACCURACY:
        missed.append(f"script-variant accuracy {script_variant_accuracy:.3f} < {TARGET_SCRIPT_VARIANT_ACCURACY}")
    return missed


def format_table(rows: Sequence[Row], first_column: str = "lang") -> str:
    header = (f"{first_column:<14}{'n':>5} | {'ours acc':>9}{'ours mF1':>9}{'needs µF1':>10} |"
              f" {'VADER acc':>9}{'VADER mF1':>10}{'needs µF1':>10}")
    lines = [header, "-" * len(header)]
    for r in rows:
        if r.name == "all":
            lines.append("-" * len(header))
        lines.append(
            f"{r.name:<14}{r.n:>5} | {r.ours_accuracy:>9.3f}{r.ours_macro_f1:>9.3f}{r.ours_needs_micro_f1:>10.3f} |"
            f" {r.vader_accuracy:>9.3f}{r.vader_macro_f1:>10.3f}{'-':>10}"
        )
    return "\n".join(lines)


def format_needs_table(per_need: dict[str, dict[str, float]]) -> str:
    lines = [f"{'need':<15}{'support':>8}{'predicted':>10}{'precision':>10}{'recall':>8}{'F1':>7}"]
    for need, s in per_need.items():
        lines.append(f"{need:<15}{s['support']:>8}{s['predicted']:>10}{s['precision']:>10.3f}{s['recall']:>8.3f}"
                     f"{s['f1']:>7.3f}")
    return "\n".join(lines)


def cpu_threads(requested: int | None) -> int:
    """Threads the embedding uses: the requested number, or every usable core (as ``E5Encoder``)."""
    return requested or len(os.sched_getaffinity(0))


def evaluate(eval_file: Path, *, batch_size: int = 32, threads: int | None = None) -> dict[str, Any]:
    """Score ``eval_file`` with the packaged model (and VADER) and return every figure of the report.
    Shared by ``make eval`` and the unit test that guards the recorded figures."""
    # Imported here so the metric functions above stay importable without the model or VADER.
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # type: ignore[import-untyped]

    from sentiment.model import SentimentModel

    items = read_items(eval_file)
    texts = [item["text"] for item in items]
    model = SentimentModel(embed_threads=threads)
    model.score(texts[:2])  # warm-up, so one-off initialisation is not counted as scoring time
    started = time.perf_counter()
    scored = []
    for start in range(0, len(texts), batch_size):
        batch = items[start:start + batch_size]
        # The declared language is not passed: the evaluation measures detection on its own.
        scored.extend(model.score([i["text"] for i in batch]))
    seconds = time.perf_counter() - started

    analyzer = SentimentIntensityAnalyzer()
    vader = [vader_label(float(analyzer.polarity_scores(text)["compound"])) for text in texts]
    truth = [item["label"] for item in items]
    ours = [s.sentiment.label for s in scored]
    ours_needs = [[n.need for n in s.needs] for s in scored]
    ours_need_sentiments = [[(n.need, n.sentiment) for n in s.needs] for s in scored]
    language_rows = build_rows(items, ours, ours_needs, vader)
    script_rows = build_rows(items, ours, ours_needs, vader, group="script")
    variants = [i for i, item in enumerate(items) if script_of(item) != NATIVE_SCRIPT]
    variant_accuracy = accuracy([truth[i] for i in variants], [ours[i] for i in variants]) if variants else None
    per_need = per_need_scores([item["needs"] for item in items], ours_needs)
    overall = next(r for r in language_rows if r.name == "all")
    neutral_recall = recall(truth, ours, "neutral")
    detected = [s.language.code for s in scored]
    need_sentiment, need_sentiment_n = need_sentiment_accuracy(items, ours_need_sentiments)
    mixed_sentiment, mixed_sentiment_n = need_sentiment_accuracy(items, ours_need_sentiments, mixed_only=True)
    # The rule the clauses replace: every need takes the text's overall predicted label.
    overall_rule = [[(n.need, s.sentiment.label) for n in s.needs] for s in scored]
    overall_rule_accuracy, _ = need_sentiment_accuracy(items, overall_rule)
    overall_rule_mixed, _ = need_sentiment_accuracy(items, overall_rule, mixed_only=True)
    missed = missed_targets(language_rows, neutral_recall=neutral_recall, script_variant_accuracy=variant_accuracy)
    return {
        "eval_file": eval_file.name,
        "eval_sha256": hashlib.sha256(eval_file.read_bytes()).hexdigest(),
        "items": len(items),
        "model_version": model.version,
        "accuracy": {
            "overall": overall.ours_accuracy,
            "per_language": {r.name: r.ours_accuracy for r in language_rows if r.name not in ("all", "lang-mean")},
            "per_script": {r.name: r.ours_accuracy for r in script_rows if r.name not in ("all", "script-mean")},
            "script_variants": variant_accuracy,
            "script_variant_items": len(variants),
        },
        "macro_f1": overall.ours_macro_f1,
        "neutral_recall": neutral_recall,
        "needs": {
            "micro_f1": overall.ours_needs_micro_f1,
            "macro_f1": needs_macro_f1(per_need),
            "per_need": per_need,
            "needs_per_item_predicted": {str(k): sum(len(n) == k for n in ours_needs) for k in range(4)},
            "needs_per_item_true": {str(k): sum(len(i["needs"]) == k for i in items) for k in range(4)},
        },
        "need_sentiment": {"accuracy": need_sentiment, "needs_scored": need_sentiment_n,
                           "mixed_items_accuracy": mixed_sentiment, "mixed_items_needs_scored": mixed_sentiment_n,
                           "overall_label_rule": {"accuracy": overall_rule_accuracy,
                                                  "mixed_items_accuracy": overall_rule_mixed}},
        "language_id": {
            "accuracy": accuracy([i["lang"] for i in items], detected),
            "per_script": {
                script: accuracy([i["lang"] for i in items if script_of(i) == script],
                                 [d for i, d in zip(items, detected, strict=True) if script_of(i) == script])
                for script in sorted({script_of(i) for i in items})
            },
        },
        "rows": [r.__dict__ for r in language_rows],
        "script_rows": [r.__dict__ for r in script_rows],
        "confusion": {"rows_are": "true label", "ours": confusion(truth, ours), "vader": confusion(truth, vader)},
        "speed": {"texts_per_second": len(texts) / seconds, "seconds": seconds, "batch_size": batch_size,
                  "cpu_threads": cpu_threads(threads)},
        "targets": {"overall_accuracy": TARGET_OVERALL_ACCURACY, "language_accuracy": TARGET_LANGUAGE_ACCURACY,
                    "needs_micro_f1": TARGET_NEEDS_MICRO_F1, "neutral_recall": TARGET_NEUTRAL_RECALL,
                    "script_variant_accuracy": TARGET_SCRIPT_VARIANT_ACCURACY},
        "missed_targets": missed,
        "passed": not missed,
    }


def recorded_figures(results: dict[str, Any]) -> dict[str, Any]:
    """What ``--record`` keeps: the guarded figures, the rest of the headline, and what they were measured on."""
    return {
        "eval_file": results["eval_file"], "eval_sha256": results["eval_sha256"], "items": results["items"],
        "model_version": results["model_version"],
        "overall_accuracy": round(results["accuracy"]["overall"], 4),
        "needs_micro_f1": round(results["needs"]["micro_f1"], 4),
        "needs_macro_f1": round(results["needs"]["macro_f1"], 4),
        "neutral_recall": round(results["neutral_recall"], 4),
        "script_variant_accuracy": round(results["accuracy"]["script_variants"], 4),
        "per_language": {k: round(v, 4) for k, v in results["accuracy"]["per_language"].items()},
        "per_script": {k: round(v, 4) for k, v in results["accuracy"]["per_script"].items()},
        "need_sentiment_accuracy": results["need_sentiment"]["accuracy"],
        "language_id_accuracy": round(results["language_id"]["accuracy"], 4),
        "allowed_drop": ALLOWED_DROP,
    }


def rows_from(results: dict[str, Any], key: str) -> list[Row]:
    return [Row(**row) for row in results[key]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sentiment_training.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--eval-file", type=Path, default=default_data_file("eval.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("build") / "eval" / "results.json")
    parser.add_argument("--batch-size", type=int, default=32, help="the service's default batch")
    parser.add_argument("--threads", type=int, default=None, help="embedding threads (default: every core)")
    parser.add_argument("--record", action="store_true",
                        help=f"also write the headline figures to {RECORDED_FILE.name}, which a unit test guards")
    args = parser.parse_args(argv)

    results = evaluate(args.eval_file, batch_size=args.batch_size, threads=args.threads)
    speed = results["speed"]
    print(f"Evaluation set: {args.eval_file} ({results['items']} items) — model {results['model_version']}")
    print(format_table(rows_from(results, "rows")))
    print()
    print(format_table(rows_from(results, "script_rows"), first_column="script"))
    print()
    print(format_needs_table(results["needs"]["per_need"]))
    needs = results["needs"]
    print(f"Needs: micro-F1 {needs['micro_f1']:.3f}, macro-F1 {needs['macro_f1']:.3f}; needs per item predicted "
          f"{needs['needs_per_item_predicted']} (true {needs['needs_per_item_true']})")
    ns = results["need_sentiment"]
    print(f"Neutral recall {results['neutral_recall']:.3f}; script variants accuracy "
          f"{results['accuracy']['script_variants']} ({results['accuracy']['script_variant_items']} items); "
          f"per-need sentiment {ns['accuracy']} on {ns['needs_scored']} found needs, {ns['mixed_items_accuracy']} "
          f"on {ns['mixed_items_needs_scored']} needs of mixed items (every need given the overall label: "
          f"{ns['overall_label_rule']['accuracy']}, {ns['overall_label_rule']['mixed_items_accuracy']})")
    print(f"Language identification: {results['language_id']['accuracy']:.3f}, per script "
          + ", ".join(f"{k} {v:.3f}" for k, v in results["language_id"]["per_script"].items()))
    print(f"Speed: {speed['texts_per_second']:.1f} texts/s ({results['items']} texts in {speed['seconds']:.2f} s, "
          f"batches of {speed['batch_size']}, {speed['cpu_threads']} CPU threads; model load excluded)")
    missed = results["missed_targets"]
    print("Targets: " + ("met" if not missed else "MISSED: " + "; ".join(missed)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"Wrote {args.out}")
    if args.record:
        RECORDED_FILE.write_text(json.dumps(recorded_figures(results), indent=1, ensure_ascii=False) + "\n",
                                 encoding="utf-8")
        print(f"Recorded the figures in {RECORDED_FILE}")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
