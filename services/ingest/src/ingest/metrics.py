from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from feedback_shared.metrics import LATENCY_BUCKETS

#: Label values for ``source``: a fixed set, so a client cannot blow up the series count.
KNOWN_SOURCES = frozenset({
    "google", "trustpilot", "app_store", "play_store", "x", "instagram", "facebook", "tiktok",
    "youtube", "reddit", "email", "survey", "web_form", "shop", "chat", "phone", "rss",
})
REJECT_REASONS = ("validation", "unauthorized", "forbidden", "too_large", "broker_unavailable",
                  "database_unavailable")


@dataclass(frozen=True)
class IngestMetrics:
    ingested: Counter
    duplicates: Counter
    rejected: Counter
    publish_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> IngestMetrics:
        metrics = cls(
            ingested=Counter("feedback_ingested", "Items accepted and handed to Kafka.",
                             ["source", "kind"], registry=registry),
            duplicates=Counter("feedback_duplicates", "Items already accepted before (answered 200).",
                               ["kind"], registry=registry),
            rejected=Counter("feedback_rejected", "Requests refused, by reason.", ["reason"],
                             registry=registry),
            publish_seconds=Histogram("ingest_publish_seconds",
                                      "Time for the broker to acknowledge one event (acks=all).",
                                      buckets=LATENCY_BUCKETS, registry=registry),
        )
        for reason in REJECT_REASONS:
            metrics.rejected.labels(reason=reason)
        return metrics

    @staticmethod
    def source_label(source: str) -> str:
        return source if source in KNOWN_SOURCES else "other"
