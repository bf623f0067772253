"""The trained heads shipped in the package: they load, have the right shapes, were trained on the
current train.jsonl, and the model version names them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from feedback_shared.events import NEEDS
from sentiment.heads import (
    EMBEDDING_DIM,
    NEEDS_HEAD_FILE,
    NEEDS_HEAD_VERSION,
    SENTIMENT_HEAD_FILE,
    SENTIMENT_HEAD_VERSION,
    NeedsNeighbours,
    centre_embeddings,
    decode_float16,
    encode_float16,
    load_needs_head,
    load_sentiment_head,
    parse_needs_head,
    parse_sentiment_head,
    read_head_document,
)
from sentiment.lexical import LEXICAL_DIM
from sentiment.model import MODEL_VERSION, SentimentModel
from sentiment_training.train import sentiment_inputs_sha256

TRAIN = Path(__file__).resolve().parents[3] / "services" / "sentiment" / "src" / "sentiment_training" / "data" / "train.jsonl"


def test_sentiment_head_loads_with_the_right_shapes() -> None:
    head = load_sentiment_head()
    assert head.version == SENTIMENT_HEAD_VERSION
    assert head.coef.shape == (3, EMBEDDING_DIM)
    assert head.intercept.shape == (3,)
    assert head.trained_weight > 0
    assert head.trained_weight + sum(h.weight for h in head.packaged) + head.lexical_weight == pytest.approx(1.0)
    assert head.lexical.coef.shape == (3, LEXICAL_DIM)
    probabilities = head.probabilities(np.eye(EMBEDDING_DIM)[:5])
    assert probabilities.shape == (5, 3)
    assert probabilities.sum(axis=1) == pytest.approx(np.ones(5))


def test_needs_head_loads_with_the_right_shapes() -> None:
    head = load_needs_head()
    assert head.version == NEEDS_HEAD_VERSION
    assert head.needs == NEEDS
    assert head.attention is not None and head.attention.bias.shape == (len(NEEDS),)
    assert head.thresholds.shape == (len(NEEDS),)
    assert ((head.thresholds > 0) & (head.thresholds < 1)).all()
    assert (head.calibration_scale > 0).all()
    assert head.max_needs == 3
    probabilities = head.probabilities(np.eye(EMBEDDING_DIM)[:4], np.eye(LEXICAL_DIM)[:4],
                                       [np.eye(EMBEDDING_DIM)[i:i + 3] for i in range(4)])
    assert probabilities.shape == (4, len(NEEDS))
    assert ((probabilities > 0) & (probabilities < 1)).all()
    assert head.neighbours is not None and head.calibration_knn_scale is not None
    assert head.neighbours.embeddings.shape[1] == EMBEDDING_DIM
    assert head.neighbours.needs.shape == (head.neighbours.embeddings.shape[0], len(NEEDS))
    assert np.linalg.norm(head.neighbours.embeddings, axis=1) == pytest.approx(1.0, abs=2e-3)


def test_the_neighbours_vote_for_the_needs_of_the_nearest_training_texts() -> None:
    embeddings = np.eye(4, EMBEDDING_DIM)
    needs = np.zeros((4, len(NEEDS)))
    needs[0, 1] = needs[1, [1, 2]] = needs[2, 3] = needs[3, 4] = 1.0
    neighbours = NeedsNeighbours(embeddings=embeddings, needs=needs, k=2, temperature=100.0, floor=0.01)
    query = np.zeros((1, EMBEDDING_DIM))
    query[0, :2] = [0.8, 0.6]  # near texts 0 and 1, nearer 0
    z = neighbours.logits(query)[0]
    vote = 1.0 / (1.0 + np.exp(-z))
    assert vote[1] == pytest.approx(0.99)  # both neighbours name need 1
    assert 0.01 < vote[2] < 0.5  # only the farther one names need 2
    assert vote[3] == pytest.approx(0.01) and vote[4] == pytest.approx(0.01)  # not among the 2 nearest


def test_the_neighbours_can_compare_texts_with_their_language_mean_taken_away() -> None:
    """Two languages far apart in the space, two topics: raw cosines find the text of the same language,
    centred ones the text of the same topic (``centre_embeddings``: the nearest centre is taken away)."""
    language = {"a": np.eye(1, EMBEDDING_DIM, 0)[0] * 3.0, "b": np.eye(1, EMBEDDING_DIM, 1)[0] * 3.0}
    topic = {1: np.eye(1, EMBEDDING_DIM, 2)[0], 2: np.eye(1, EMBEDDING_DIM, 3)[0]}

    def text(lang: str, t: int) -> npt.NDArray[np.float64]:
        v = language[lang] + topic[t]
        return np.asarray(v / np.linalg.norm(v), dtype=np.float64)

    training = np.stack([text("a", 2), text("b", 1)])
    needs = np.zeros((2, len(NEEDS)))
    needs[0, 2] = needs[1, 1] = 1.0  # each text names its topic's need
    centres = np.stack([text("a", 1) + text("a", 2), text("b", 1) + text("b", 2)]) / 2
    query = text("a", 1)
    raw = NeedsNeighbours(embeddings=training, needs=needs, k=1, temperature=100.0)
    assert raw.logits(query)[0].argmax() == 2  # the same language, the other topic
    centred = NeedsNeighbours(embeddings=centre_embeddings(training, centres), needs=needs, k=1, temperature=100.0,
                              centres=centres)
    assert centred.logits(query)[0].argmax() == 1  # the same topic, the other language
    assert np.linalg.norm(centre_embeddings(training, centres), axis=1) == pytest.approx(1.0)


def test_float16_matrices_round_trip() -> None:
    matrix = np.random.default_rng(0).normal(size=(3, 5))
    back = decode_float16(encode_float16(matrix), (3, 5))
    assert back == pytest.approx(matrix, rel=1e-3, abs=1e-4)
    with pytest.raises(ValueError, match="expected"):
        decode_float16(encode_float16(matrix), (2, 5))


def test_heads_were_trained_on_the_current_training_set() -> None:
    """Changing train.jsonl without re-running ``make train-heads`` fails here. A change of the needs alone
    needs only the needs head retrained (``train --needs-only``): the sentiment head then still records the
    digest of every text, language and label it read, and those must be the current ones."""
    digest = hashlib.sha256(TRAIN.read_bytes()).hexdigest()
    assert load_needs_head().training_sha256 == digest
    if load_sentiment_head().training_sha256 != digest:
        items = [json.loads(line) for line in TRAIN.read_text("utf-8").splitlines() if line.strip()]
        recorded = read_head_document(SENTIMENT_HEAD_FILE)["training_data"].get("sentiment_inputs_sha256")
        assert recorded == sentiment_inputs_sha256(items), "the texts or labels changed: retrain both heads"
    for name in (SENTIMENT_HEAD_FILE, NEEDS_HEAD_FILE):
        document = read_head_document(name)
        assert document["training_data"]["file"].endswith("train.jsonl")
        assert "eval" not in json.dumps(document["training_data"])


def test_model_version_names_the_trained_heads_and_the_packaged_heads_it_mixes_in() -> None:
    assert SENTIMENT_HEAD_VERSION in MODEL_VERSION
    assert NEEDS_HEAD_VERSION in MODEL_VERSION
    assert SentimentModel.version == MODEL_VERSION
    for packaged in load_sentiment_head().packaged:
        named = f"sentimentai-{packaged.scoring}{packaged.version}" in MODEL_VERSION
        assert named == (packaged.weight > 0), packaged


def _documents() -> tuple[dict[str, Any], dict[str, Any]]:
    return read_head_document(SENTIMENT_HEAD_FILE), read_head_document(NEEDS_HEAD_FILE)


def test_a_stale_or_malformed_head_is_refused() -> None:
    sentiment, needs = _documents()
    with pytest.raises(ValueError, match="version"):
        parse_sentiment_head({**sentiment, "version": "sentiment-lr0"})
    with pytest.raises(ValueError, match="shape"):
        parse_sentiment_head({**sentiment, "coef": sentiment["coef"][:2]})
    with pytest.raises(ValueError, match="sum to 1"):
        parse_sentiment_head({**sentiment, "combination": {**sentiment["combination"], "trained": 2.0}})
    with pytest.raises(ValueError, match="needs"):
        parse_needs_head({**needs, "needs": list(reversed(needs["needs"]))})
    with pytest.raises(ValueError, match="thresholds"):
        parse_needs_head({**needs, "thresholds": [1.5] * len(NEEDS)})
    with pytest.raises(ValueError, match="shape"):
        parse_needs_head({**needs, "thresholds": [0.5] * 3})
    with pytest.raises(ValueError, match="scales"):
        parse_needs_head({**needs, "calibration": {**needs["calibration"], "scale": [-1.0] * len(NEEDS)}})
    with pytest.raises(ValueError, match="top_threshold"):
        parse_needs_head({**needs, "top_threshold": 1.2})
    with pytest.raises(ValueError, match="neighbour"):
        parse_needs_head({**needs, "neighbours": {**needs["neighbours"], "needs": needs["neighbours"]["needs"][:5]}})
    with pytest.raises(ValueError, match="neighbours k"):
        parse_needs_head({**needs, "neighbours": {**needs["neighbours"], "k": 0}})


def test_the_top_needs_threshold_is_read_and_is_optional() -> None:
    _, needs = _documents()
    assert parse_needs_head({**needs, "top_threshold": 0.2}).top_threshold == 0.2
    without = {k: v for k, v in needs.items() if k != "top_threshold"}
    assert parse_needs_head(without).top_threshold is None
    assert load_needs_head().top_threshold == needs.get("top_threshold")
