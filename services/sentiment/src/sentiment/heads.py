"""The heads trained on this project's labelled data (``python -m sentiment_training.train``), read at runtime.

They ship as small JSON files inside the package, so serving needs only numpy: a multinomial logistic
sentiment head whose probabilities are mixed with sentimentai's packaged heads, and a needs head of 16
per-need attention poolings over the encoder's token states (from the run that gives the embedding)
stacked with letter n-gram classifiers and a nearest-neighbour vote of the training texts, each need
calibrated and with its own threshold. The weights, the neutral calibration and the threshold
were chosen by cross-validation on ``train.jsonl`` only; the file records how, and on which data.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import numpy as np
import numpy.typing as npt

from feedback_shared.events import NEEDS
from sentiment.lexical import LEXICAL_DIM, NGRAM_SIZES, SparseRows
from sentiment.scoring import LABELS

FloatArray = npt.NDArray[np.float64]

#: Bump these when a retrained head changes its parameters: the model version (and so the ids of
#: scored events) is derived from them, and a head file whose version differs is refused at load.
SENTIMENT_HEAD_VERSION = "sentiment-lr13"
NEEDS_HEAD_VERSION = "needs-attn20-knnc"

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
class LexicalHead:
    """A linear model on the letter n-gram features of ``sentiment.lexical``: (k, LEXICAL_DIM) weights."""

    coef: FloatArray
    intercept: FloatArray

    def logits(self, features: SparseRows | npt.ArrayLike) -> FloatArray:
        if isinstance(features, SparseRows):
            return np.asarray(features.dot(self.coef) + self.intercept, dtype=np.float64)
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        return np.asarray(x @ self.coef.T + self.intercept, dtype=np.float64)


def _softmax(z: FloatArray) -> FloatArray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return np.asarray(p / p.sum(axis=1, keepdims=True), dtype=np.float64)


@dataclass(frozen=True)
class SentimentHead:
    """Multinomial logistic regression on the embedding, plus how its output is mixed and calibrated."""

    version: str
    coef: FloatArray  # (3, dim), rows in LABELS order
    intercept: FloatArray  # (3,)
    trained_weight: float
    packaged: tuple[PackagedHeadWeight, ...]
    lexical: LexicalHead  # (3, LEXICAL_DIM)
    lexical_weight: float
    neutral_log_bias: float
    training_sha256: str
    #: The encoder adaptation (``sentiment.encoder.EncoderAdapter.version``) the head was trained on; None: the
    #: plain encoder. The service refuses to run a head on another's embeddings.
    encoder_adapter: str | None = None

    def lexical_probabilities(self, features: SparseRows | npt.ArrayLike) -> FloatArray:
        """Softmax of the letter n-gram head: (n, 3) in [negative, neutral, positive] order."""
        return _softmax(self.lexical.logits(features))

    def probabilities(self, embeddings: npt.ArrayLike) -> FloatArray:
        """Softmax of the linear scores: (n, 3) in [negative, neutral, positive] order."""
        x = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        return _softmax(x @ self.coef.T + self.intercept)


def _logit(p: FloatArray) -> FloatArray:
    return np.asarray(np.log(p / (1.0 - p)), dtype=np.float64)


@dataclass(frozen=True)
class NeedsNeighbours:
    """The third view of the needs head: the needs of a text's ``k`` nearest training texts (cosine of the
    embeddings), each weighted by ``exp(temperature * cosine)``, as a logit per need. The training texts'
    embeddings ship as float16 (cosines then move by about 1e-4, far below an effect on a label).

    A text embedded near several training texts about two needs gets both: what one linear boundary per
    need blurs, the neighbours keep (chosen by cross-validation on train.jsonl: ``sentiment_training.train``)."""

    embeddings: FloatArray  # (n_train, dim), L2-normalised (after centring, when the head has centres)
    needs: FloatArray  # (n_train, 16) 0/1
    k: int
    temperature: float
    #: The vote is squeezed into [floor, 1 - floor] before its logit, so a unanimous vote stays finite.
    floor: float = 0.01
    #: The mean embedding of each language of the training texts (None: no centring). A text is compared
    #: after the mean nearest to it is taken away and it is L2-normalised again (``centred``): what the
    #: languages share in the encoder's space then weighs less than what the text is about, so a text finds
    #: the neighbours that name its needs in every language, not those that only share its language.
    centres: FloatArray | None = None

    def centred(self, embeddings: npt.ArrayLike) -> FloatArray:
        """The embeddings with the nearest centre (highest cosine) taken away, L2-normalised again."""
        x = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        if self.centres is None:
            return x
        return centre_embeddings(x, self.centres)

    def logits(self, embeddings: npt.ArrayLike) -> FloatArray:
        """(n, 16): logit(floor + (1 - 2 floor) * weighted share of the k neighbours tagged with each need)."""
        x = self.centred(embeddings)
        similarity = x @ self.embeddings.T
        k = min(self.k, similarity.shape[1])
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        s = np.take_along_axis(similarity, nearest, axis=1)
        weights = np.exp((s - s.max(axis=1, keepdims=True)) * self.temperature)
        weights /= weights.sum(axis=1, keepdims=True)
        vote = np.einsum("nk,nkj->nj", weights, self.needs[nearest])
        return _logit(self.floor + (1.0 - 2.0 * self.floor) * vote)


@dataclass(frozen=True)
class PackedStates:
    """The last hidden states of several texts stacked into one (tokens, dim) float32 matrix, each text's
    rows scaled so that their mean has norm 1 (the mean is then the text's L2-normalised embedding)."""

    states: npt.NDArray[np.float32]  # (tokens, dim)
    starts: npt.NDArray[np.int64]  # (texts,) each text's first row
    rows: npt.NDArray[np.int64]  # (tokens,) the text of each row


def pack_states(states: Sequence[npt.ArrayLike]) -> PackedStates:
    """``PackedStates`` of each text's (tokens, dim) states (at least one row each)."""
    parts = [np.asarray(s, dtype=np.float32) for s in states]
    lengths = np.array([len(p) for p in parts], dtype=np.int64)
    if len(parts) == 0:
        return PackedStates(np.zeros((0, EMBEDDING_DIM), dtype=np.float32), lengths, lengths)
    if (lengths < 1).any():
        raise ValueError("every text needs at least one token state")
    scales = [1.0 / max(float(np.linalg.norm(p.mean(axis=0))), 1e-12) for p in parts]
    packed = np.concatenate([p * np.float32(c) for p, c in zip(parts, scales, strict=True)]).astype(np.float32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return PackedStates(packed, starts, np.repeat(np.arange(len(parts), dtype=np.int64), lengths))


def attention_forward(
    packed: PackedStates, query: npt.NDArray[np.float32], value: npt.NDArray[np.float32], bias: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Per-need attention pooling: logit_j = sum_t softmax_t(h_t . q_j) (h_t . w_j) + b_j over each text's
    (scaled) states h_t. ``query`` and ``value`` are (dim, k). Returns the (texts, k) logits and, for the
    gradient (``sentiment_training.train.fit_needs_attention``), the attention weights and values per row
    and the pooled values per text. The runtime and the training call this one function."""
    if len(packed.starts) == 0:
        empty = np.zeros((0, query.shape[1]), dtype=np.float32)
        return np.zeros((0, query.shape[1])), empty, empty, empty
    scores = packed.states @ query
    top = np.maximum.reduceat(scores, packed.starts, axis=0)
    e = np.exp(scores - top[packed.rows])
    attention = e / np.add.reduceat(e, packed.starts, axis=0)[packed.rows]
    values = packed.states @ value
    pooled = np.add.reduceat(attention * values, packed.starts, axis=0)
    return np.asarray(pooled + bias, dtype=np.float64), attention, values, pooled


@dataclass(frozen=True)
class NeedsAttention:
    """The first view of the attention needs head: for each need a query q_j and a value direction w_j over
    the text's last hidden states (``sentiment.encoder.Encoded.states``, scaled as ``pack_states``):
    logit_j = sum_t softmax_t(h_t . q_j) (h_t . w_j) + b_j. Each need reads the tokens that speak of it, where
    the mean embedding averages them with the rest (chosen over the embedding's logistic regression by
    cross-validation on train.jsonl: ``sentiment_training.train``)."""

    query: npt.NDArray[np.float32]  # (dim, 16)
    value: npt.NDArray[np.float32]  # (dim, 16)
    bias: FloatArray  # (16,)

    def logits(self, states: Sequence[npt.ArrayLike]) -> FloatArray:
        """(n, 16) logits of the n texts (or clauses) whose token states are given."""
        return attention_forward(pack_states(states), self.query, self.value, self.bias)[0]


def centre_embeddings(embeddings: npt.ArrayLike, centres: npt.ArrayLike) -> FloatArray:
    """Each row minus the centre of highest cosine to it, L2-normalised again (``NeedsNeighbours.centres``)."""
    x = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
    c = np.atleast_2d(np.asarray(centres, dtype=np.float64))
    nearest = (x @ (c / np.linalg.norm(c, axis=1, keepdims=True)).T).argmax(axis=1)
    y = x - c[nearest]
    return np.asarray(y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12), dtype=np.float64)


def encode_float16(matrix: npt.ArrayLike) -> str:
    """A matrix as base64 of its little-endian float16 bytes (row-major): the neighbours' embeddings."""
    return base64.b64encode(np.asarray(matrix, dtype="<f2").tobytes()).decode("ascii")


def decode_float16(text: str, shape: tuple[int, int]) -> FloatArray:
    values = np.frombuffer(base64.b64decode(text), dtype="<f2")
    if values.size != shape[0] * shape[1]:
        raise ValueError(f"float16 matrix: expected {shape[0] * shape[1]} values, got {values.size}")
    return values.reshape(shape).astype(np.float64)


@dataclass(frozen=True)
class NeedsHead:
    """Three views per need (the embedding's logistic regression or, in an attention head, a per-need
    attention pooling of the token states; the letter n-grams; the nearest training texts), stacked by
    their own calibration (Platt scaling fitted on out-of-fold scores), and each need's own decision
    threshold; at most ``max_needs`` needs per text, the most likely one kept from ``top_threshold``
    instead of its own threshold when the head has one."""

    version: str
    needs: tuple[str, ...]
    coef: FloatArray | None  # (16, dim), rows in NEEDS order (None: the attention view instead)
    intercept: FloatArray | None  # (16,)
    lexical: LexicalHead  # (16, LEXICAL_DIM)
    #: p = sigmoid(scale * z + lexical_scale * z_lexical + knn_scale * z_knn + offset), the three views' logits
    calibration_scale: FloatArray  # (16,)
    calibration_lexical_scale: FloatArray  # (16,)
    calibration_offset: FloatArray  # (16,)
    thresholds: FloatArray  # (16,)
    max_needs: int
    training_sha256: str
    #: The most likely need is kept from this threshold instead of its own (None: from its own). Most
    #: feedback is about something, and a text left with no need at all was the commonest miss.
    top_threshold: float | None = None
    #: The nearest-neighbour view and its calibration weight (None: a head of the other two views only).
    neighbours: NeedsNeighbours | None = None
    calibration_knn_scale: FloatArray | None = None  # (16,)
    #: The first view as attention pooling over the token states, in place of ``coef`` (None: ``coef``).
    attention: NeedsAttention | None = None
    #: As ``SentimentHead.encoder_adapter``.
    encoder_adapter: str | None = None

    def first_view_logits(self, embeddings: npt.ArrayLike, states: Sequence[npt.ArrayLike] | None) -> FloatArray:
        """The first view's (n, 16) logits: the attention over ``states`` or the linear model of ``embeddings``."""
        if self.attention is not None:
            if states is None:
                raise ValueError(f"{self.version}: the attention needs head scores the token states, none given")
            return self.attention.logits(states)
        if self.coef is None or self.intercept is None:
            raise ValueError(f"{self.version}: a needs head without coef or attention")
        x = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        return np.asarray(x @ self.coef.T + self.intercept, dtype=np.float64)

    def probabilities(self, embeddings: npt.ArrayLike, lexical_features: SparseRows | npt.ArrayLike,
                      states: Sequence[npt.ArrayLike] | None = None) -> FloatArray:
        """Calibrated, independent per-need probabilities: (n, 16) in NEEDS order. ``states``: each text's
        last hidden states (``sentiment.encoder.Encoded``), which an attention head needs."""
        x = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        z = (self.first_view_logits(x, states) * self.calibration_scale
             + self.lexical.logits(lexical_features) * self.calibration_lexical_scale + self.calibration_offset)
        if self.neighbours is not None and self.calibration_knn_scale is not None:
            z = z + self.neighbours.logits(x) * self.calibration_knn_scale
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))), dtype=np.float64)


def _matrix(value: Any, shape: tuple[int, ...], what: str) -> FloatArray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what}: not all values are finite")
    return array


def _lexical_head(data: Mapping[str, Any], rows: int, name: str) -> LexicalHead:
    features = data["features"]
    # Features built another way than the head was trained on would score silently wrong.
    expected = {"dim": LEXICAL_DIM, "ngram_sizes": list(NGRAM_SIZES), "hash": "crc32", "text": "fold_to_latin"}
    if dict(features) != expected:
        raise ValueError(f"{name}: lexical features {dict(features)}, this code builds {expected}")
    return LexicalHead(coef=_matrix(data["coef"], (rows, LEXICAL_DIM), f"{name} lexical coef"),
                       intercept=_matrix(data["intercept"], (rows,), f"{name} lexical intercept"))


def _check_version(data: Mapping[str, Any], expected: str, name: str) -> str:
    version = str(data.get("version"))
    if version != expected:
        # A stale or foreign file would silently change scores under an unchanged model version.
        raise ValueError(f"{name}: head version {version!r}, this code expects {expected!r}")
    return version


def encoder_adapter_of(data: Mapping[str, Any]) -> str | None:
    """The encoder adaptation a head document says it was trained on (None: the plain encoder)."""
    adapter = data.get("embedding", {}).get("adapter")
    return None if adapter is None else str(adapter)


def parse_sentiment_head(data: Mapping[str, Any], *, expected_version: str = SENTIMENT_HEAD_VERSION) -> SentimentHead:
    """Validate a sentiment head document (as written by ``sentiment_training.train``) and build the head."""
    version = _check_version(data, expected_version, SENTIMENT_HEAD_FILE)
    if tuple(data["classes"]) != LABELS:
        raise ValueError(f"{SENTIMENT_HEAD_FILE}: classes must be {LABELS}, got {data['classes']}")
    combination = data["combination"]
    packaged = tuple(
        PackagedHeadWeight(scoring=str(h["scoring"]), version=str(h["version"]), weight=float(h["weight"]))
        for h in combination["packaged"]
    )
    trained_weight = float(combination["trained"])
    lexical_weight = float(combination["lexical"])
    weights = [trained_weight, *(h.weight for h in packaged), lexical_weight]
    if min(weights) < 0 or not np.isclose(sum(weights), 1.0):
        raise ValueError(f"{SENTIMENT_HEAD_FILE}: mixture weights must be >= 0 and sum to 1, got {weights}")
    return SentimentHead(
        version=version,
        coef=_matrix(data["coef"], (len(LABELS), EMBEDDING_DIM), "sentiment coef"),
        intercept=_matrix(data["intercept"], (len(LABELS),), "sentiment intercept"),
        trained_weight=trained_weight,
        packaged=packaged,
        lexical=_lexical_head(data["lexical"], len(LABELS), SENTIMENT_HEAD_FILE),
        lexical_weight=lexical_weight,
        neutral_log_bias=float(combination["neutral_log_bias"]),
        training_sha256=str(data["training_data"]["sha256"]),
        encoder_adapter=encoder_adapter_of(data),
    )


def parse_needs_head(data: Mapping[str, Any], *, expected_version: str = NEEDS_HEAD_VERSION) -> NeedsHead:
    """Validate a needs head document (as written by ``sentiment_training.train``) and build the head."""
    version = _check_version(data, expected_version, NEEDS_HEAD_FILE)
    needs = tuple(str(n) for n in data["needs"])
    if needs != NEEDS:
        raise ValueError(f"{NEEDS_HEAD_FILE}: needs must be the 16 NEEDS in order, got {needs}")
    calibration = data["calibration"]
    thresholds = _matrix(data["thresholds"], (len(NEEDS),), "needs thresholds")
    max_needs = int(data["max_needs"])
    if not ((thresholds > 0.0) & (thresholds < 1.0)).all() or not 1 <= max_needs <= 3:
        raise ValueError(f"{NEEDS_HEAD_FILE}: bad thresholds {thresholds.tolist()} or max_needs {max_needs}")
    top_threshold = None if data.get("top_threshold") is None else float(data["top_threshold"])
    if top_threshold is not None and not 0.0 < top_threshold < 1.0:
        raise ValueError(f"{NEEDS_HEAD_FILE}: bad top_threshold {top_threshold}")
    scale = _matrix(calibration["scale"], (len(NEEDS),), "needs calibration scale")
    if not (scale > 0).all():
        # A calibration must keep the classifier's order: a higher score never means a lower probability.
        raise ValueError(f"{NEEDS_HEAD_FILE}: calibration scales must be > 0, got {scale.tolist()}")
    neighbours, knn_scale = None, None
    if data.get("neighbours") is not None:
        knn = data["neighbours"]
        n_train = int(knn["items"])
        neighbour_needs = np.zeros((n_train, len(NEEDS)))
        if len(knn["needs"]) != n_train:
            raise ValueError(f"{NEEDS_HEAD_FILE}: {len(knn['needs'])} neighbour need lists for {n_train} items")
        for row, indices in enumerate(knn["needs"]):
            neighbour_needs[row, [int(i) for i in indices]] = 1.0
        neighbours = NeedsNeighbours(
            embeddings=decode_float16(knn["embeddings_float16"], (n_train, EMBEDDING_DIM)),
            needs=neighbour_needs, k=int(knn["k"]), temperature=float(knn["temperature"]),
            floor=float(knn["floor"]),
            centres=None if knn.get("centres") is None else _matrix(
                knn["centres"], (len(knn["centres"]), EMBEDDING_DIM), "needs neighbour centres"))
        if not (neighbours.k >= 1 and neighbours.temperature > 0 and 0 < neighbours.floor < 0.5):
            raise ValueError(f"{NEEDS_HEAD_FILE}: bad neighbours k {neighbours.k}, temperature "
                             f"{neighbours.temperature} or floor {neighbours.floor}")
        knn_scale = _matrix(calibration["knn_scale"], (len(NEEDS),), "needs calibration knn scale")
    attention, coef, intercept = None, None, None
    if data.get("attention") is not None:
        pooling = data["attention"]
        attention = NeedsAttention(
            query=_matrix(pooling["query"], (len(NEEDS), EMBEDDING_DIM), "needs attention query").T.astype(np.float32),
            value=_matrix(pooling["value"], (len(NEEDS), EMBEDDING_DIM), "needs attention value").T.astype(np.float32),
            bias=_matrix(pooling["bias"], (len(NEEDS),), "needs attention bias"))
    else:
        coef = _matrix(data["coef"], (len(NEEDS), EMBEDDING_DIM), "needs coef")
        intercept = _matrix(data["intercept"], (len(NEEDS),), "needs intercept")
    return NeedsHead(
        version=version,
        needs=needs,
        coef=coef,
        intercept=intercept,
        lexical=_lexical_head(data["lexical"], len(NEEDS), NEEDS_HEAD_FILE),
        calibration_scale=scale,
        calibration_lexical_scale=_matrix(calibration["lexical_scale"], (len(NEEDS),), "needs calibration lexical scale"),
        calibration_offset=_matrix(calibration["offset"], (len(NEEDS),), "needs calibration offset"),
        thresholds=thresholds,
        max_needs=max_needs,
        training_sha256=str(data["training_data"]["sha256"]),
        top_threshold=top_threshold,
        neighbours=neighbours,
        calibration_knn_scale=knn_scale,
        attention=attention,
        encoder_adapter=encoder_adapter_of(data),
    )


def read_head_document(name: str) -> dict[str, Any]:
    """The raw JSON of a head file shipped in the ``sentiment`` package."""
    document: dict[str, Any] = json.loads(files("sentiment").joinpath(name).read_text("utf-8"))
    return document


def load_sentiment_head() -> SentimentHead:
    return parse_sentiment_head(read_head_document(SENTIMENT_HEAD_FILE))


def load_needs_head() -> NeedsHead:
    return parse_needs_head(read_head_document(NEEDS_HEAD_FILE))
