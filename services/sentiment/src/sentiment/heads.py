"""The heads trained on this project's labelled data (``python -m sentiment.train``), read at runtime.

They ship as small JSON files inside the package, so serving needs only numpy: a multinomial logistic
sentiment head whose probabilities are mixed with sentimentai's packaged heads, and 16 one-vs-rest
logistic needs classifiers with a threshold. The weights, the neutral calibration and the threshold
were chosen by cross-validation on ``train.jsonl`` only; the file records how, and on which data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import numpy as np
import numpy.typing as npt

from feedback_shared.events import NEEDS
from sentiment.scoring import LABELS

FloatArray = npt.NDArray[np.float64]

#: Bump these when a retrained head changes its parameters: the model version (and so the ids of
#: scored events) is derived from them, and a head file whose version differs is refused at load.
SENTIMENT_HEAD_VERSION = "sentiment-lr5"
NEEDS_HEAD_VERSION = "needs-ovr5"

SENTIMENT_HEAD_FILE = "sentiment_head.json"
NEEDS_HEAD_FILE = "needs_head.json"
EMBEDDING_DIM = 384


@dataclass(frozen=True)
class PackagedHeadWeight:
    """One of sentimentai's packaged e5-small heads and its weight in the mixture."""

    scoring: str
    version: str
    weight: float


@dataclass(frozen=True)
class SentimentHead:
    """Multinomial logistic regression on the embedding, plus how its output is mixed and calibrated."""

    version: str
    coef: FloatArray  # (3, dim), rows in LABELS order
    intercept: FloatArray  # (3,)
    trained_weight: float
    packaged: tuple[PackagedHeadWeight, ...]
    neutral_log_bias: float
    training_sha256: str

    def probabilities(self, embeddings: npt.ArrayLike) -> FloatArray:
        """Softmax of the linear scores: (n, 3) in [negative, neutral, positive] order."""
        x = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        z = x @ self.coef.T + self.intercept
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return np.asarray(p / p.sum(axis=1, keepdims=True), dtype=np.float64)


@dataclass(frozen=True)
class NeedsHead:
    """One-vs-rest logistic classifiers, one per need, and the decision thresholds: the most likely need
    is tagged from ``top_threshold``, a second and third one from ``threshold`` (at least as high)."""

    version: str
    needs: tuple[str, ...]
    coef: FloatArray  # (16, dim), rows in NEEDS order
    intercept: FloatArray  # (16,)
    top_threshold: float
    threshold: float
    max_needs: int
    training_sha256: str

    def probabilities(self, embeddings: npt.ArrayLike) -> FloatArray:
        """Independent per-need probabilities: (n, 16) in NEEDS order."""
        x = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        z = np.clip(x @ self.coef.T + self.intercept, -50.0, 50.0)
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def _matrix(value: Any, shape: tuple[int, ...], what: str) -> FloatArray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what}: not all values are finite")
    return array


def _check_version(data: Mapping[str, Any], expected: str, name: str) -> str:
    version = str(data.get("version"))
    if version != expected:
        # A stale or foreign file would silently change scores under an unchanged model version.
        raise ValueError(f"{name}: head version {version!r}, this code expects {expected!r}")
    return version


def parse_sentiment_head(data: Mapping[str, Any], *, expected_version: str = SENTIMENT_HEAD_VERSION) -> SentimentHead:
    """Validate a sentiment head document (as written by ``sentiment.train``) and build the head."""
    version = _check_version(data, expected_version, SENTIMENT_HEAD_FILE)
    if tuple(data["classes"]) != LABELS:
        raise ValueError(f"{SENTIMENT_HEAD_FILE}: classes must be {LABELS}, got {data['classes']}")
    combination = data["combination"]
    packaged = tuple(
        PackagedHeadWeight(scoring=str(h["scoring"]), version=str(h["version"]), weight=float(h["weight"]))
        for h in combination["packaged"]
    )
    trained_weight = float(combination["trained"])
    weights = [trained_weight, *(h.weight for h in packaged)]
    if min(weights) < 0 or not np.isclose(sum(weights), 1.0):
        raise ValueError(f"{SENTIMENT_HEAD_FILE}: mixture weights must be >= 0 and sum to 1, got {weights}")
    return SentimentHead(
        version=version,
        coef=_matrix(data["coef"], (len(LABELS), EMBEDDING_DIM), "sentiment coef"),
        intercept=_matrix(data["intercept"], (len(LABELS),), "sentiment intercept"),
        trained_weight=trained_weight,
        packaged=packaged,
        neutral_log_bias=float(combination["neutral_log_bias"]),
        training_sha256=str(data["training_data"]["sha256"]),
    )


def parse_needs_head(data: Mapping[str, Any], *, expected_version: str = NEEDS_HEAD_VERSION) -> NeedsHead:
    """Validate a needs head document (as written by ``sentiment.train``) and build the head."""
    version = _check_version(data, expected_version, NEEDS_HEAD_FILE)
    needs = tuple(str(n) for n in data["needs"])
    if needs != NEEDS:
        raise ValueError(f"{NEEDS_HEAD_FILE}: needs must be the 16 NEEDS in order, got {needs}")
    top_threshold = float(data["top_threshold"])
    threshold = float(data["threshold"])
    max_needs = int(data["max_needs"])
    if not 0.0 < top_threshold <= threshold < 1.0 or not 1 <= max_needs <= 3:
        raise ValueError(f"{NEEDS_HEAD_FILE}: bad thresholds {top_threshold}, {threshold} or max_needs {max_needs}")
    return NeedsHead(
        version=version,
        needs=needs,
        coef=_matrix(data["coef"], (len(NEEDS), EMBEDDING_DIM), "needs coef"),
        intercept=_matrix(data["intercept"], (len(NEEDS),), "needs intercept"),
        top_threshold=top_threshold,
        threshold=threshold,
        max_needs=max_needs,
        training_sha256=str(data["training_data"]["sha256"]),
    )


def read_head_document(name: str) -> dict[str, Any]:
    """The raw JSON of a head file shipped in the ``sentiment`` package."""
    document: dict[str, Any] = json.loads(files("sentiment").joinpath(name).read_text("utf-8"))
    return document


def load_sentiment_head() -> SentimentHead:
    return parse_sentiment_head(read_head_document(SENTIMENT_HEAD_FILE))


def load_needs_head() -> NeedsHead:
    return parse_needs_head(read_head_document(NEEDS_HEAD_FILE))
