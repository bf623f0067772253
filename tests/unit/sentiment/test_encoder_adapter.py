"""The encoder's low-rank adaptation: the file round-trips, a zero update is the plain model, a bad file is
refused, and the runtime's int8 graph with the adapter computes what the torch model it was trained in
computes (so the heads, trained on the runtime's states, see the model the adapter was fitted for)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sentiment.encoder import ADAPTER_FILE, E5Encoder, EncoderAdapter, load_adapter
from sentiment.model import embedding_text

ROOT = Path(__file__).resolve().parents[3]


def _train_texts(step: int) -> list[str]:
    path = ROOT / "services/sentiment/src/sentiment_training/data/train.jsonl"
    return [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines()[::step]]


def _random_adapter(rng: np.random.Generator, names: list[str], scale: float = 2.0) -> EncoderAdapter:
    shapes = {"q": (384, 384), "fi": (1536, 384), "fo": (384, 1536)}
    factors = {}
    for name in names:
        n_out, n_in = shapes[name.split(".")[1]]
        factors[name] = (rng.normal(0, 0.05, (4, n_in)).astype(np.float32),
                         rng.normal(0, 0.05, (n_out, 4)).astype(np.float32))
    return EncoderAdapter(version="test", scale=scale, factors=factors)


def test_an_adapter_file_round_trips_in_float16(tmp_path: Path) -> None:
    adapter = _random_adapter(np.random.default_rng(1), ["l10.q", "l11.fi", "l11.fo"])
    adapter.save(tmp_path / "a.npz")
    loaded = load_adapter(tmp_path / "a.npz")
    assert (loaded.version, loaded.scale, sorted(loaded.factors)) == ("test", 2.0, ["l10.q", "l11.fi", "l11.fo"])
    for name, (a, b) in adapter.factors.items():
        np.testing.assert_allclose(loaded.factors[name][0], a, atol=1e-3)
        np.testing.assert_allclose(loaded.factors[name][1], b, atol=1e-3)
    delta = loaded.delta("l11.fi")
    assert delta is not None and delta.shape == (1536, 384)
    np.testing.assert_allclose(delta, 2.0 * adapter.factors["l11.fi"][1] @ adapter.factors["l11.fi"][0], atol=1e-3)
    assert loaded.delta("l3.q") is None


def test_a_zero_update_is_the_plain_model() -> None:
    texts = _train_texts(200)
    zero = EncoderAdapter(version="zero", scale=2.0, factors={
        "l11.q": (np.ones((4, 384), np.float32), np.zeros((384, 4), np.float32))})
    np.testing.assert_array_equal(E5Encoder(threads=1, adapter=zero).embed(texts),
                                  E5Encoder(threads=1, adapter=None).embed(texts))


def test_an_adapter_for_a_linear_the_model_lacks_or_of_the_wrong_shape_is_refused() -> None:
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="no such linear"):
        E5Encoder(threads=1, adapter=EncoderAdapter("bad", 1.0, {"l12.q": _random_adapter(rng, ["l1.q"]).factors["l1.q"]}))
    wrong = _random_adapter(rng, ["l1.fi"]).factors["l1.fi"]  # (1536, 384) offered for a (384, 384) weight
    with pytest.raises(ValueError, match="update"):
        E5Encoder(threads=1, adapter=EncoderAdapter("bad", 1.0, {"l1.q": wrong}))


def test_the_packaged_adapter_is_what_the_service_runs_and_changes_the_embeddings() -> None:
    packaged = load_adapter(ADAPTER_FILE)
    assert packaged.factors, "the packaged adapter holds no factors"
    texts = _train_texts(100)
    adapted = E5Encoder(threads=1).embed(texts)
    np.testing.assert_array_equal(adapted, E5Encoder(threads=1, adapter=packaged).embed(texts))
    plain = E5Encoder(threads=1, adapter=None).embed(texts)
    cosine = (adapted * plain).sum(axis=1)
    # Adapted, not replaced: every text moves, none beyond recognition.
    assert cosine.max() < 0.9995 and cosine.min() > 0.5, (cosine.min(), cosine.max())


def test_a_fitted_adapter_runs_in_the_int8_runtime_as_in_the_torch_model_it_was_fitted_in(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sentiment_training import adapt  # torch (CPU) is installed by make install

    monkeypatch.setattr(adapt, "EPOCHS", 1)
    monkeypatch.setattr(adapt, "HEAD_WARM_STEPS", 20)
    texts = _train_texts(60)
    rng = np.random.default_rng(3)
    labels = adapt.Labels(needs=(rng.random((len(texts), 16)) < 0.2).astype(np.int64),
                          sentiment=rng.integers(0, 3, len(texts)))
    trainer = adapt.AdapterTrainer(texts, threads=1)
    fitted = trainer.fit(np.arange(len(texts), dtype=np.int64), labels, log=False)
    assert sorted(fitted.factors) == sorted(f"l{i}.{n}" for i in adapt.ADAPTED_LAYERS for n in adapt.ADAPTABLE_LINEARS)
    assert all(np.abs(b).max() > 0 for _, b in fitted.factors.values()), "a factor never moved from zero"
    _, torch_embeddings = trainer.states_and_embeddings()
    # The trainer reads the texts as the heads do (``embedding_text``: Cyrillic Uzbek in Latin letters).
    read = [embedding_text(t) for t in texts]
    runtime = E5Encoder(threads=1, adapter=fitted).embed(read)
    plain = E5Encoder(threads=1, adapter=None).embed(read)
    cosine = (runtime * torch_embeddings).sum(axis=1)
    assert cosine.min() > 0.995, cosine.min()
    # and the runtime did apply it: the plain model is further from the torch model than the adapted one
    assert ((plain * torch_embeddings).sum(axis=1) < cosine).mean() > 0.9


def test_the_heads_were_trained_on_the_packaged_adapter_and_the_model_version_names_it() -> None:
    from sentiment.heads import NEEDS_HEAD_FILE, SENTIMENT_HEAD_FILE, read_head_document
    from sentiment.model import MODEL_VERSION

    version = load_adapter(ADAPTER_FILE).version
    for head_file in (SENTIMENT_HEAD_FILE, NEEDS_HEAD_FILE):
        assert read_head_document(head_file)["embedding"]["adapter"] == version, head_file
    assert MODEL_VERSION.split("+")[0] == f"e5small-{version}-ort-int8"


def test_heads_of_another_adapter_are_refused_at_start() -> None:
    from sentiment.heads import load_needs_head, load_sentiment_head
    from sentiment.model import check_heads_match_encoder

    packaged = load_adapter(ADAPTER_FILE)
    heads = [load_sentiment_head(), load_needs_head()]
    check_heads_match_encoder(E5Encoder(threads=1), heads)  # the packaged pair starts
    other = EncoderAdapter(version="lora-other", scale=packaged.scale, factors=packaged.factors)
    with pytest.raises(RuntimeError, match="trained on encoder adapter 'lora19'.*runs 'lora-other'"):
        check_heads_match_encoder(E5Encoder(threads=1, adapter=other), heads)
    with pytest.raises(RuntimeError, match="runs None"):
        check_heads_match_encoder(E5Encoder(threads=1, adapter=None), heads)
