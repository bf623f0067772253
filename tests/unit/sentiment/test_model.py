"""The real packaged model (it loads in a fraction of a second): multilingual sanity checks."""

from __future__ import annotations

import pytest

from sentiment.model import SentimentModel


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return SentimentModel()


CASES = [
    ("The product broke after two days and support never answered. I want a refund!", "en", "negative"),
    ("Great service, fast delivery, I love it", "en", "positive"),
    ("Ужасный сервис, никогда больше не закажу", "ru", "negative"),
    ("Отличный магазин, всё пришло вовремя", "ru", "positive"),
    ("Xidmət çox pis idi, heç kim cavab vermədi", "az", "negative"),
    ("Өте нашар қызмет, тапсырыс кешікті", "kk", "negative"),
    ("მომსახურება საშინელი იყო", "ka", "negative"),
    ("Շատ լավ սպասարկում, շնորհակալություն", "hy", "positive"),
    ("El pedido llegó roto y nadie responde", "es", "negative"),
]


def test_multilingual_labels_and_languages(model: SentimentModel) -> None:
    results = model.score([text for text, _, _ in CASES])
    for (text, language, label), result in zip(CASES, results, strict=True):
        assert result.language.code == language, text
        assert result.sentiment.label == label, text
        assert set(result.sentiment.probabilities) == {"negative", "neutral", "positive"}


def test_needs_are_tagged_in_other_languages(model: SentimentModel) -> None:
    [hold, charged] = model.score([
        "Я час висел на линии, в поддержку невозможно дозвониться",
        "Kartımdan iki dəfə əlavə ödəniş çıxıldı, bu ədalətsizdir",
    ])
    assert "accessibility" in [n.need for n in hold.needs]
    assert {"fairness", "price"} & {n.need for n in charged.needs}


def test_declared_language_is_used_when_detection_is_unreliable(model: SentimentModel) -> None:
    [short] = model.score(["ok"], ["uz"])
    assert short.language.code == "uz"
    assert "language_detection_unreliable" in short.sentiment.low_confidence_reasons
    assert "short_text" in short.sentiment.low_confidence_reasons


def test_repeated_texts_are_scored_once_and_identically(model: SentimentModel) -> None:
    texts = ["Die Lieferung kam zu spät", "Die Lieferung kam zu spät", "Great, thanks!"]
    hits_before = model.cache_hits
    first = model.score(texts)
    assert first[0] is first[1]
    again = model.score(texts, ["de", None, None])  # a declared language is part of the key
    assert again[1] is first[1] and again[2] is first[2]
    assert model.cache_hits - hits_before == 1 + 2
    assert model.score([]) == []


def test_a_long_text_is_read_to_512_tokens_and_says_so(model: SentimentModel) -> None:
    """A 100,000-character review costs what 512 tokens cost: the encoder, the regular expressions and
    the language detector see only the part the model reads, and the result says how much that was."""
    seen: list[str] = []
    real = model._encoder.encode

    def spy(texts, cuts):  # type: ignore[no-untyped-def]
        seen.extend(texts)
        return real(texts, cuts)

    model._encoder.encode = spy  # type: ignore[method-assign]
    try:
        long_text = "The blender broke on day one and nobody answers my e-mails. " * 1700
        [result] = model.score([long_text])
    finally:
        model._encoder.encode = real  # type: ignore[method-assign]
    assert len(long_text) > 100_000
    assert result.sentiment.truncated and result.sentiment.scored_chars is not None
    assert result.sentiment.scored_chars < 4096
    assert seen and all(model._encoder.token_count(text) <= 512 for text in seen)
    assert result.sentiment.label == "negative"
    [short] = model.score(["The blender broke on day one."])
    assert not short.sentiment.truncated and short.sentiment.scored_chars is None


def test_the_cache_is_bounded_in_bytes_and_holds_no_text(model: SentimentModel) -> None:
    from sentiment.model import ScoreCache

    cache = ScoreCache(max_bytes=10 * ScoreCache.ENTRY_BYTES)
    [result] = model.score(["Fine."])
    cache.put_many([(ScoreCache.key(f"text {i} " * 5000, None), result) for i in range(50)])
    assert len(cache) == 10 and cache.bytes <= 10 * ScoreCache.ENTRY_BYTES
    assert all(isinstance(key, bytes) and len(key) == 16 for key in cache._entries)
    assert cache.clear() == 10 and len(cache) == 0


def test_batches_scored_at_once_from_two_threads_match_one_at_a_time(model: SentimentModel) -> None:
    # The service scores the next batch while the last one is still in the encoder
    # (``SENTIMENT_BATCHES_IN_FLIGHT``): sharing the sessions must not mix up the batches' results.
    from concurrent.futures import ThreadPoolExecutor

    batches = [[f"{text} ({n})" for text, _, _ in CASES] for n in range(6)]
    alone = []
    for batch in batches:
        model.cache.clear()
        alone.append(model.score(batch))
    model.cache.clear()
    with ThreadPoolExecutor(max_workers=3) as pool:
        together = list(pool.map(model.score, batches))
    for one, other in zip(alone, together, strict=True):
        assert [r.sentiment.label for r in one] == [r.sentiment.label for r in other]
        assert [r.language.code for r in one] == [r.language.code for r in other]
        assert [[n.need for n in r.needs] for r in one] == [[n.need for n in r.needs] for r in other]
        for a, b in zip(one, other, strict=True):
            assert a.sentiment.probabilities == pytest.approx(b.sentiment.probabilities, abs=1e-5)


def test_batches_in_flight_are_bounded() -> None:
    from pydantic import ValidationError

    from sentiment.config import Settings

    assert Settings().batches_in_flight == 2
    for bad in (0, 5):
        with pytest.raises(ValidationError, match="batches_in_flight"):
            Settings(batches_in_flight=bad)


def test_the_scoring_batch_is_bounded() -> None:
    from pydantic import ValidationError

    from sentiment.config import Settings

    assert (Settings().batch_size, Settings().batch_wait_s) == (64, 0.05)
    for field, bad in (("batch_size", 0), ("batch_size", 513), ("batch_wait_s", 0), ("batch_wait_s", 5.1)):
        with pytest.raises(ValidationError, match=field):
            Settings(**{field: bad})
