"""The needs head's attention view (``sentiment.heads.NeedsAttention``): the runtime's forward pass is the one
training fits and writes, its gradient is right, the shipped head carries it, and the states it reads come
from the encoder run that gives the embeddings."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from feedback_shared.events import NEEDS
from sentiment.heads import (
    EMBEDDING_DIM,
    NEEDS_HEAD_FILE,
    NeedsAttention,
    attention_forward,
    load_needs_head,
    pack_states,
    parse_needs_head,
    read_head_document,
)
from sentiment.lexical import LEXICAL_DIM
from sentiment_training import train as T


def _states(rng: np.random.Generator, n: int, dim: int = EMBEDDING_DIM) -> list[npt.NDArray[np.float32]]:
    return [rng.normal(size=(int(rng.integers(2, 12)), dim)).astype(np.float32) for _ in range(n)]


def _plain_loop(states: list[npt.NDArray[np.float32]], query: Any, value: Any, bias: Any) -> npt.NDArray[np.float64]:
    """The rule written out one text and one need at a time, in float64."""
    out = np.zeros((len(states), query.shape[1]))
    for i, s in enumerate(states):
        h = np.asarray(s, dtype=np.float64)
        h = h / np.linalg.norm(h.mean(axis=0))
        for j in range(query.shape[1]):
            scores = h @ np.asarray(query[:, j], dtype=np.float64)
            weights = np.exp(scores - scores.max())
            weights /= weights.sum()
            out[i, j] = float(weights @ (h @ np.asarray(value[:, j], dtype=np.float64))) + float(bias[j])
    return out


def test_the_runtime_forward_is_the_rule_written_out() -> None:
    rng = np.random.default_rng(0)
    states = _states(rng, 7)
    model = NeedsAttention(query=rng.normal(size=(EMBEDDING_DIM, 16)).astype(np.float32) * 0.2,
                           value=rng.normal(size=(EMBEDDING_DIM, 16)).astype(np.float32) * 0.2,
                           bias=rng.normal(size=16))
    np.testing.assert_allclose(model.logits(states), _plain_loop(states, model.query, model.value, model.bias),
                               rtol=1e-4, atol=1e-4)
    # A text's logits do not depend on the other texts of its batch, nor on the scale of its states.
    alone = np.concatenate([model.logits([s]) for s in states])
    np.testing.assert_allclose(alone, model.logits(states), atol=1e-5)
    np.testing.assert_allclose(model.logits([3.0 * s for s in states]), model.logits(states), atol=1e-4)
    assert model.logits([]).shape == (0, 16)


def test_the_training_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    d, k = 6, 3
    packed = pack_states(_states(rng, 9, d))
    needs = rng.integers(0, 2, size=(9, k))
    x = rng.normal(size=2 * d * k + k) * 0.5
    loss, gradient = T.attention_objective(x, packed, needs, 1e-2, 1e-1)
    step = 1e-3
    for i in rng.choice(len(x), 12, replace=False):
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        numeric = (T.attention_objective(up, packed, needs, 1e-2, 1e-1)[0]
                   - T.attention_objective(down, packed, needs, 1e-2, 1e-1)[0]) / (2 * step)
        assert gradient[i] == pytest.approx(numeric, rel=2e-2, abs=2e-4), i
    assert np.isfinite(loss)


def test_training_learns_a_keyword_and_the_written_head_scores_as_training_did() -> None:
    """A need present exactly when one token direction occurs among the states is learnt; the head document
    that training writes, read by the runtime, gives the logits training computed (the out-of-fold scores and
    the thresholds were chosen on those)."""
    rng = np.random.default_rng(2)
    keyword = rng.normal(size=EMBEDDING_DIM).astype(np.float32) * 3
    states = _states(rng, 160)
    needs = np.zeros((160, len(NEEDS)), dtype=np.int64)
    for i in range(0, 160, 2):
        states[i][rng.integers(0, len(states[i]))] += keyword
        needs[i, 0] = 1
    needs[:, 1] = rng.integers(0, 2, size=160)
    model = T.fit_needs_attention(pack_states(states[:120]), needs[:120], iterations=60)
    trained = attention_forward(pack_states(states[120:]), model.query, model.value, model.bias)[0]
    assert ((trained[:, 0] > 0) == needs[120:, 0].astype(bool)).mean() >= 0.9

    document = {**read_head_document(NEEDS_HEAD_FILE), "attention": T.attention_document(model)}
    head = parse_needs_head(document, expected_version=document["version"])
    assert head.attention is not None and head.coef is None
    np.testing.assert_allclose(head.first_view_logits(np.zeros((40, EMBEDDING_DIM)), states[120:]), trained,
                               rtol=1e-5, atol=1e-5)


def test_the_shipped_head_reads_token_states_and_its_probabilities_are_bounded() -> None:
    head = load_needs_head()
    assert head.attention is not None and head.coef is None and head.intercept is None
    assert head.attention.query.shape == head.attention.value.shape == (EMBEDDING_DIM, len(NEEDS))
    assert np.isfinite(head.attention.query).all() and np.isfinite(head.attention.value).all()
    rng = np.random.default_rng(3)
    states = _states(rng, 5)
    embeddings = np.stack([s.mean(axis=0) / np.linalg.norm(s.mean(axis=0)) for s in states])
    p = head.probabilities(embeddings, np.zeros((5, LEXICAL_DIM)), states)
    assert p.shape == (5, len(NEEDS)) and ((p >= 0) & (p <= 1)).all()
    with pytest.raises(ValueError, match="token states"):
        head.probabilities(embeddings, np.zeros((5, LEXICAL_DIM)))


def test_a_malformed_attention_view_is_refused() -> None:
    needs = read_head_document(NEEDS_HEAD_FILE)
    attention = needs["attention"]
    with pytest.raises(ValueError, match="shape"):
        parse_needs_head({**needs, "attention": {**attention, "query": attention["query"][:3]}})
    with pytest.raises(ValueError, match="finite"):
        parse_needs_head({**needs, "attention": {**attention, "bias": [float("nan")] * len(NEEDS)}})


def test_the_states_come_from_the_run_that_gives_the_embeddings() -> None:
    from sentiment.aspects import clause_cuts
    from sentiment.encoder import E5Encoder

    encoder = E5Encoder(threads=1)
    texts = ["Great food, awful prices", "ok", "a " * 700 + ", but then it broke"]
    calls: list[int] = []
    run = encoder._run_states

    def counted(windows):  # type: ignore[no-untyped-def]
        calls.append(len(windows))
        return run(windows)

    encoder._run_states = counted  # type: ignore[method-assign]
    encoded = encoder.encode(texts, [clause_cuts(t) for t in texts])
    assert sum(calls) == 1 + 1 + 2  # one window each, two for the long text: each run once
    encoder._run_states = run  # type: ignore[method-assign]
    np.testing.assert_allclose(encoded.embeddings, encoder.embed(texts), atol=1e-5)
    for embedding, states in zip(encoded.embeddings[:2], encoded.states[:2], strict=True):
        mean = states.mean(axis=0)
        np.testing.assert_allclose(mean / np.linalg.norm(mean), embedding, atol=1e-4)
    assert [len(s) for s in encoded.clause_states] == [2, 1, 1]
    assert len(encoded.states[2]) == len(encoder.tokenize(texts[2])) + 2 * 2  # both windows' <s> and </s>
