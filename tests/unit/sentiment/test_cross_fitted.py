"""The heads' selection on cross-fitted views (``sentiment_training.crossfit``): out-of-fold scores from
encoders adapted without the fold scored, read in place of the shipped adapter's (synthetic data; the adapter
fits themselves are measured by ``make train-crossfit``, minutes each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import sparse  # type: ignore[import-untyped]

from feedback_shared.events import NEEDS
from sentiment.heads import EMBEDDING_DIM
from sentiment.lexical import LEXICAL_DIM
from sentiment.scoring import LABELS
from sentiment_training import crossfit
from sentiment_training import train as T


def synthetic_set(n: int = 60, seed: int = 3) -> T.TrainingSet:
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % 3
    # The shipped adapter's embeddings separate the labels perfectly (as on the texts it was fitted on).
    embeddings = rng.normal(size=(n, EMBEDDING_DIM)) * 0.01
    embeddings[np.arange(n), labels] += 1.0
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    needs = np.zeros((n, len(NEEDS)), dtype=np.int64)
    needs[np.arange(n), labels] = 1
    noise = sparse.random(n, LEXICAL_DIM, density=0.002, random_state=seed, format="csr")
    uninformative = np.full((n, 3), 1 / 3)
    return T.TrainingSet(
        items=[{"text": f"t{i}", "lang": "en", "label": LABELS[labels[i]], "needs": [NEEDS[labels[i]]]}
               for i in range(n)],
        sha256="a" * 64, embeddings=embeddings, labels=labels, languages=np.array(["en"] * n), needs=needs,
        packaged=dict.fromkeys(T.PACKAGED_HEADS, uninformative), lexical=noise)


def views_for(data: T.TrainingSet, repeats: int, *, lr_right: bool) -> crossfit.CrossFittedViews:
    n = len(data.items)
    one_hot = np.eye(3)[data.labels]
    wrong = np.eye(3)[(data.labels + 1) % 3]
    flat = np.full((n, 3), 1 / 3)
    rng = np.random.default_rng(5)
    return crossfit.CrossFittedViews(
        train_sha256=data.sha256, adapter_settings=crossfit.adapter_settings(), repeats=repeats,
        sentiment_lr={c: [(one_hot if lr_right else wrong) * 0.6 + 0.4 / 3 for _ in range(repeats)]
                      for c in T.SENTIMENT_C_GRID},
        # The first packaged head is right on the cross-fitted views, the second uninformative.
        packaged={key: [one_hot * 0.9 + 0.1 / 3 if i == 0 else flat for _ in range(repeats)]
                  for i, key in enumerate(T.PACKAGED_HEADS)},
        attention=[rng.normal(size=(n, len(NEEDS))) for _ in range(repeats)],
        knn=[rng.normal(size=(n, len(NEEDS))) for _ in range(repeats)],
    )


def test_cross_fitted_views_survive_the_file(tmp_path: Path) -> None:
    data = synthetic_set()
    views = views_for(data, 2, lr_right=True)
    views.save(tmp_path / "cf.npz")

    loaded = crossfit.load_cross_fitted(tmp_path / "cf.npz")

    assert loaded.repeats == 2 and loaded.train_sha256 == data.sha256
    assert loaded.adapter_settings == crossfit.adapter_settings()
    for c in T.SENTIMENT_C_GRID:
        for got, want in zip(loaded.sentiment_lr[c], views.sentiment_lr[c], strict=True):
            np.testing.assert_array_equal(got, want)
    for key in T.PACKAGED_HEADS:
        np.testing.assert_array_equal(loaded.packaged[key][1], views.packaged[key][1])
    np.testing.assert_array_equal(loaded.attention[0], views.attention[0])
    np.testing.assert_array_equal(loaded.knn[1], views.knn[1])
    assert loaded.sha256() == views.sha256()
    changed = [a.copy() for a in views.knn]
    changed[1][0, 0] += 1e-9
    assert crossfit.CrossFittedViews(**{**views.__dict__, "knn": changed}).sha256() != views.sha256()


def test_views_of_other_training_data_or_adapter_settings_are_refused(tmp_path: Path) -> None:
    data = synthetic_set()
    views = views_for(data, 1, lr_right=True)
    other_data = crossfit.CrossFittedViews(**{**views.__dict__, "train_sha256": "b" * 64})
    other_data.save(tmp_path / "other-data.npz")
    other_settings = crossfit.CrossFittedViews(
        **{**views.__dict__, "adapter_settings": {**views.adapter_settings, "epochs": 99}})
    other_settings.save(tmp_path / "other-settings.npz")

    with pytest.raises(SystemExit, match="another train.jsonl"):
        T.read_cross_fitted(tmp_path / "other-data.npz", data)
    with pytest.raises(SystemExit, match="other adapter settings"):
        T.read_cross_fitted(tmp_path / "other-settings.npz", data)
    views.save(tmp_path / "good.npz")
    _, record = T.read_cross_fitted(tmp_path / "good.npz", data)
    assert record["repeats"] == 1 and record["views_sha256"] == views.sha256()


def test_the_sentiment_mixture_is_chosen_on_the_cross_fitted_views(monkeypatch: pytest.MonkeyPatch) -> None:
    # On the shipped adapter's own embeddings the trained head is perfect and wins all the weight; on views
    # from encoders that never saw the fold it is wrong, and the packaged head that holds up must outweigh it.
    monkeypatch.setattr(T, "SENTIMENT_C_GRID", (10.0,))  # a small grid: the rule, not the search, is tested
    monkeypatch.setattr(T, "NEUTRAL_BIAS_GRID", (0.0,))
    data = synthetic_set()
    strata = [f"en/{LABELS[y]}" for y in data.labels]
    splits = T.stratified_splits(strata, folds=3, repeats=1, seed=1)
    everything = np.arange(len(data.items), dtype=np.int64)

    leaky = T.select_sentiment(data, everything, splits)
    cross_fitted = T.select_sentiment(data, everything, splits, views_for(data, 1, lr_right=False))

    assert leaky.weights[0] == 1.0 and leaky.cv_accuracy == 1.0
    assert cross_fitted.cv_accuracy == 1.0
    assert cross_fitted.weights[1] * 0.9 > cross_fitted.weights[0] * 0.6  # the right head outweighs the wrong


def test_cross_fitted_views_must_match_the_repeats() -> None:
    data = synthetic_set()
    strata = [f"en/{LABELS[y]}" for y in data.labels]
    splits = T.stratified_splits(strata, folds=3, repeats=2, seed=1)
    everything = np.arange(len(data.items), dtype=np.int64)

    with pytest.raises(ValueError, match="own repeats"):
        T.select_sentiment(data, everything, splits, views_for(data, 1, lr_right=True))
    with pytest.raises(ValueError, match="own repeats"):
        T.select_sentiment(data, everything[:30], [[(np.arange(15), np.arange(15, 30))]],
                           views_for(data, 1, lr_right=True))


def test_fold_views_score_the_held_out_fold_only() -> None:
    data = synthetic_set(n=45)
    rng = np.random.default_rng(9)
    states = [rng.normal(size=(4, EMBEDDING_DIM)).astype(np.float32) for _ in range(len(data.items))]
    tr, te = np.arange(30, dtype=np.int64), np.arange(30, 45, dtype=np.int64)

    views = crossfit.fold_views(data, data.embeddings, states, tr, te)

    assert set(views) == {*(f"lr.{c:g}" for c in T.SENTIMENT_C_GRID),
                          *(f"packaged.{'-'.join(k)}" for k in T.PACKAGED_HEADS), "attention", "knn"}
    for key, value in views.items():
        assert value.shape[0] == len(te), key
    # The logistic regression was fitted on the training rows alone and predicts the held-out ones.
    direct = T.fit_sentiment_lr(data.embeddings[tr], data.labels[tr], 10.0).predict_proba(data.embeddings[te])
    np.testing.assert_allclose(views["lr.10"], direct)
    assert (views["lr.10"].argmax(axis=1) == data.labels[te]).all()
