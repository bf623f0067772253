"""The needs head's stacked Platt calibration (``train.stack_views``), shared by training and the group-fold
comparison of ``needs_cv`` (synthetic logits)."""

from __future__ import annotations

import numpy as np

from sentiment_training import needs_cv
from sentiment_training import train as T


def synthetic_views(n: int = 2000, needs: int = 3, seed: int = 4) -> tuple[list[T.FloatArray], T.IntArray]:
    # Each view's logit is +-mean plus unit Gaussian noise: the optimal stacked weights are 2 * mean (2, 1, 0).
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, needs)) < 0.3).astype(np.int64)
    signal = np.where(truth == 1, 1.0, -1.0)
    informative = signal + rng.normal(size=(n, needs))
    weak = 0.5 * signal + rng.normal(size=(n, needs))
    noise = rng.normal(size=(n, needs))
    return [informative, weak, noise], truth


def test_the_stack_weighs_the_informative_view_most() -> None:
    views, truth = synthetic_views()

    weights, offset = T.stack_views(views, truth)

    assert weights.shape == (3, 3) and offset.shape == (3,)
    np.testing.assert_allclose(weights[:, 0], 2.0, atol=0.35)
    np.testing.assert_allclose(weights[:, 1], 1.0, atol=0.35)
    np.testing.assert_allclose(weights[:, 2], 0.0, atol=0.25)
    p = T.apply_stacked(views, weights, offset)
    assert ((p > 0.5) == truth.astype(bool)).mean() > 0.85


def test_the_head_calibration_is_the_stack_over_its_three_views() -> None:
    views, truth = synthetic_views()
    halves = [[v[:1000], v[1000:]] for v in views]  # two "repeats" of the same rows

    scale, lexical_scale, knn_scale, offset = T.fit_calibration(*halves, truth[:1000])
    weights, stacked_offset = T.stack_views([np.concatenate(h) for h in halves], np.concatenate([truth[:1000]] * 2))

    np.testing.assert_array_equal(np.column_stack([scale, lexical_scale, knn_scale]), weights)
    np.testing.assert_array_equal(offset, stacked_offset)
    np.testing.assert_allclose(T.calibrated(*views, scale, lexical_scale, knn_scale, offset),
                               T.apply_stacked(views, weights, offset), rtol=1e-12)


def test_cross_fitted_micro_f1_scores_each_fold_with_what_the_others_chose() -> None:
    views, truth = synthetic_views(n=400)
    splits = T.stratified_splits([str(row[0]) for row in truth], folds=4, repeats=1, seed=2)

    [good] = needs_cv.cross_fitted_micro_f1([views], truth, splits)
    [noise_only] = needs_cv.cross_fitted_micro_f1([[views[2]]], truth, splits)

    assert good > 0.75
    assert noise_only < 0.5
