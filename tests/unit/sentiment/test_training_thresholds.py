"""The needs decision rule as training chooses it: per-need thresholds, and a threshold of its own for the
most likely need of a text, kept only where cross-validated micro-F1 rises (synthetic scores)."""

from __future__ import annotations

import numpy as np

from feedback_shared.events import NEEDS
from sentiment.scoring import need_ranks, needs_from_probabilities, needs_mask
from sentiment_training.train import choose_per_need_thresholds


def test_the_training_mask_is_the_runtime_rule_with_a_top_threshold() -> None:
    rng = np.random.default_rng(7)
    scores = rng.random((40, len(NEEDS)))
    thresholds = rng.uniform(0.3, 0.9, len(NEEDS))
    for top in (None, 0.2, 0.95):
        mask = needs_mask(scores, thresholds, top_threshold=top, ranks=need_ranks(scores))
        for row, p in zip(mask, scores, strict=True):
            runtime = {n.need for n in needs_from_probabilities(p, threshold=thresholds, top_threshold=top)}
            assert runtime == {NEEDS[j] for j in np.flatnonzero(row)}


def test_a_top_threshold_is_chosen_when_the_only_need_of_a_text_scores_low() -> None:
    # Texts of kind A are about need 0 alone, with a low score that is still the highest of the row.
    # Texts of kind B are about need 1; need 0 comes second there with a higher, wrong score. No threshold
    # on need 0 tells them apart; a lower threshold for each text's first need does.
    kind_a = np.tile([0.15, 0.05, 0.05], (10, 1))
    kind_b = np.tile([0.3, 0.9, 0.05], (10, 1))
    scores = np.vstack([kind_a, kind_b])
    truth = np.vstack([np.tile([True, False, False], (10, 1)), np.tile([False, True, False], (10, 1))])

    chosen = choose_per_need_thresholds([scores], truth)

    assert chosen.per_need_cv_micro_f1 < 0.81
    assert chosen.top_threshold is not None and chosen.top_threshold <= 0.15
    assert chosen.cv_micro_f1 == 1.0
    assert chosen.thresholds[0] > 0.3


def test_no_top_threshold_when_it_does_not_help() -> None:
    scores = np.vstack([np.tile([0.8, 0.1, 0.1], (5, 1)), np.tile([0.1, 0.1, 0.1], (5, 1))])
    truth = np.vstack([np.tile([True, False, False], (5, 1)), np.zeros((5, 3), dtype=bool)])

    chosen = choose_per_need_thresholds([scores], truth)

    assert chosen.top_threshold is None
    assert chosen.cv_micro_f1 == chosen.per_need_cv_micro_f1 == 1.0


def test_the_shared_threshold_mask_is_the_runtime_rule() -> None:
    rng = np.random.default_rng(11)
    scores = rng.random((40, len(NEEDS)))
    scores[:5, :4] = 0.5  # ties: the NEEDS order decides, at runtime and in training alike
    for top, shared in ((0.3, 0.6), (0.7, 0.7), (0.95, 0.2)):
        mask = needs_mask(scores, shared, top_threshold=top)
        for row, p in zip(mask, scores, strict=True):
            runtime = [n.need for n in needs_from_probabilities(p, threshold=shared, top_threshold=top)]
            assert set(runtime) == {NEEDS[j] for j in np.flatnonzero(row)}
            assert len(runtime) <= 3
