from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Histogram

from feedback_shared.events import NEEDS, FeedbackKind
from feedback_shared.metrics import dlq_counter, latency_histogram, stall_counter
from sentiment.scoring import LABELS, VALIDATED_LANGUAGES


@dataclass(frozen=True)
class SentimentMetrics:
    scored: Counter
    needs: Counter
    suggestions: Counter
    feedback_to_score: Histogram
    batch_size: Histogram
    dlq: Counter
    stalls: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> SentimentMetrics:
        m = cls(
            scored=Counter("feedback_scored", "Feedback items scored, by detected language and label.",
                           ["language", "label"], registry=registry),
            needs=Counter("feedback_needs", "Customer needs tagged, by need and the need's own sentiment (not the text's overall label).",
                          ["need", "label"], registry=registry),
            suggestions=Counter("feedback_suggestions", "Scored items also sent to the product team "
                                "(product.suggestions.v1), by the kind they were sent as.", ["kind"],
                                registry=registry),
            feedback_to_score=latency_histogram(
                "feedback_to_score_seconds", "From ingestion to the scored event being published.",
                registry),
            batch_size=Histogram("sentiment_batch_size", "Messages scored together.",
                                 buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=registry),
            dlq=dlq_counter(registry),
            stalls=stall_counter(registry),
        )
        for kind in get_args(FeedbackKind):
            m.suggestions.labels(kind=kind)
        for label in LABELS:
            for need in NEEDS:
                m.needs.labels(need=need, label=label)
        return m

    @staticmethod
    def language_label(code: str | None) -> str:
        return code if code in VALIDATED_LANGUAGES else "other"
