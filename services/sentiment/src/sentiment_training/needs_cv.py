"""``python -m sentiment_training.needs_cv``: compare needs-head variants by cross-validation on train.jsonl.

Only train.jsonl is read. The folds keep near-translations together: texts whose embeddings have a cosine of
0.95 or more are joined into groups (connected components), and StratifiedGroupKFold (language x label
strata, 5 folds x 3 repeats) never splits a group, since many training texts are translations of one another
and flatter an ordinary split, a nearest-neighbour view above all. Each variant's out-of-fold logits are
calibrated (Platt per need, stacked over its views) and given per-need thresholds and a top-need threshold
(``train.choose_per_need_thresholds``) on the other four folds' out-of-fold scores only, then scored on the
fold left out ("cross-fitted"): the number is not flattered by choosing the thresholds on the rows scored.
Each k,temperature pair is scored twice: on the embeddings as they are, and with the nearest of the training
folds' language means taken from every embedding first (``train.NEEDS_KNN_CENTRES``, the shipped view).
``--attention`` also scores the shipped head's first view, attention pooling over the token states
(``train.attention_needs_oof``, 15 fits of about a minute), in place of the embedding's logistic regression,
with the centred neighbours; ``--seed-offset`` draws other folds (round thirteen checked round twelve's
choice on offsets 10 to 12).

Since round nineteen the texts are embedded by the packaged adapted encoder, which was fitted on all of train: its
out-of-fold figures are flattered (the encoder has seen every held-out fold) and compare head variants only with
that caveat; ``python -m sentiment_training.adapt --cv`` fits an adapter per fold.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence

import numpy as np
from scipy import sparse  # type: ignore[import-untyped]
from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]

from sentiment.scoring import needs_mask
from sentiment_training import train as T
from sentiment_training.evaluate import default_data_file

GROUP_COSINE = 0.95


def group_splits(data: T.TrainingSet, strata: Sequence[str], cosine: float = GROUP_COSINE,
                 seed_offset: int = 0) -> T.Splits:
    from sklearn.model_selection import StratifiedGroupKFold  # type: ignore[import-untyped]

    similar = data.embeddings @ data.embeddings.T >= cosine
    _, groups = connected_components(sparse.csr_matrix(similar), directed=False)
    return [
        [(np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64)) for tr, te in
         StratifiedGroupKFold(T.FOLDS, shuffle=True, random_state=T.SEED + seed_offset + r).split(
             np.zeros(len(strata)), list(strata), groups)]
        for r in range(T.REPEATS)
    ]


def cross_fitted_micro_f1(views_per_repeat: list[list[T.FloatArray]], needs: T.IntArray, splits: T.Splits) -> list[float]:
    truth = needs.astype(bool)
    scores = []
    for views, repeat in zip(views_per_repeat, splits, strict=True):
        predicted = np.zeros(truth.shape, dtype=bool)
        for _, held in repeat:
            rest = np.setdiff1d(np.arange(len(needs)), held)
            weights, offset = T.stack_views([v[rest] for v in views], needs[rest])
            choice = T.choose_per_need_thresholds([T.apply_stacked([v[rest] for v in views], weights, offset)],
                                                  truth[rest])
            p = T.apply_stacked([v[held] for v in views], weights, offset)
            predicted[held] = needs_mask(p, choice.thresholds, top_threshold=choice.top_threshold, max_needs=T.MAX_NEEDS)
        scores.append(T.micro_f1_matrix(truth, predicted))
    return scores


def main(argv: Sequence[str] | None = None) -> int:
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    parser = argparse.ArgumentParser(prog="python -m sentiment_training.needs_cv", description=__doc__.split("\n")[0])
    parser.add_argument("--knn", nargs="*", default=[f"{T.NEEDS_KNN_K},{T.NEEDS_KNN_TEMPERATURE:g}"],
                        help="k,temperature pairs to compare")
    parser.add_argument("--cosine", type=float, default=GROUP_COSINE, help="group texts at this cosine or more")
    parser.add_argument("--attention", action="store_true",
                        help="also score the shipped head's views (attention pooling over the token states in place "
                             "of the embedding's logistic regression), paired per repeat with the logistic one")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="fold seeds SEED + offset + repeat (another draw of the folds than the usual)")
    args = parser.parse_args(argv)
    data = T.load_training_set(default_data_file("train.jsonl"))
    strata = [f"{item['lang']}/{item['label']}" for item in data.items]
    splits = group_splits(data, strata, args.cosine, args.seed_offset)
    everything = np.arange(len(data.items), dtype=np.int64)
    with threadpool_limits(limits=1):
        linear = [T.logit(p) for p in T.needs_oof(data, everything, splits, 30.0, None)]
        lexical = T.lexical_needs_oof(data, splits)
        base = cross_fitted_micro_f1([[z, zl] for z, zl in zip(linear, lexical, strict=True)], data.needs, splits)
        print(f"embedding LR (C 30) + letter n-grams: cross-fitted micro-F1 {np.mean(base):.4f} "
              f"({' '.join(f'{s:.4f}' for s in base)})", flush=True)
        attention: list[T.FloatArray] | None = None
        for pair, raw in itertools.product(args.knn, (True, False)):
            k, temperature = (float(x) for x in pair.split(","))
            knn = T.knn_needs_oof(data, splits, k=int(k), temperature=temperature, centred=not raw)
            scores = cross_fitted_micro_f1([[z, zl, zk] for z, zl, zk in zip(linear, lexical, knn, strict=True)],
                                           data.needs, splits)
            print(f"  + nearest neighbours k {int(k)}, temperature {temperature:g}"
                  f"{'' if raw else ', nearest language mean taken away'}: cross-fitted micro-F1 "
                  f"{np.mean(scores):.4f} ({' '.join(f'{s:.4f}' for s in scores)})", flush=True)
            if args.attention and not raw:
                if attention is None:
                    attention = T.attention_needs_oof(data, splits)
                with_attention = cross_fitted_micro_f1(
                    [[za, zl, zk] for za, zl, zk in zip(attention, lexical, knn, strict=True)], data.needs, splits)
                print(f"    the attention view in place of the logistic regression: cross-fitted micro-F1 "
                      f"{np.mean(with_attention):.4f} ({' '.join(f'{s:.4f}' for s in with_attention)}); paired "
                      f"differences {' '.join(f'{a - b:+.4f}' for a, b in zip(with_attention, scores, strict=True))}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
