from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Histogram

from feedback_shared.events import TOUCH_POINTS, Event, FeedbackKind, SurveyScores
from feedback_shared.metrics import LATENCY_BUCKETS

#: Label values for ``source``: a fixed set, so a client cannot blow up the series count.
KNOWN_SOURCES = frozenset({
    "google", "trustpilot", "app_store", "play_store", "x", "instagram", "facebook", "tiktok",
    "youtube", "reddit", "email", "survey", "web_form", "shop", "chat", "phone", "rss",
})
REJECT_REASONS = ("validation", "unauthorized", "forbidden", "too_large", "broker_unavailable",
                  "database_unavailable")
#: The label for an item that names no touch point or journey stage.
NONE = "none"
#: One bucket per possible answer, so the histogram is the exact distribution (``le="6"``: detractors).
NPS_BUCKETS = tuple(float(n) for n in range(0, 11))
CSAT_BUCKETS = tuple(float(n) for n in range(1, 6))
FEEDBACK_KINDS: tuple[str, ...] = get_args(FeedbackKind)


@dataclass(frozen=True)
class IngestMetrics:
    ingested: Counter
    duplicates: Counter
    rejected: Counter
    publish_seconds: Histogram
    nps: Histogram
    csat: Histogram
    journey: Counter

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
            nps=Histogram("feedback_nps_score", "NPS answers (0-10) accepted, by touch point.",
                          ["touch_point"], buckets=NPS_BUCKETS, registry=registry),
            csat=Histogram("feedback_csat_score", "CSAT answers (1-5) accepted, by touch point.",
                           ["touch_point"], buckets=CSAT_BUCKETS, registry=registry),
            journey=Counter("feedback_journey_items", "Feedback items accepted, by kind, touch point and "
                            "journey stage ('none': not given).", ["kind", "touch_point", "journey_stage"],
                            registry=registry),
        )
        for reason in REJECT_REASONS:
            metrics.rejected.labels(reason=reason)
        for touch_point in (*TOUCH_POINTS, NONE):
            metrics.nps.labels(touch_point=touch_point)
            metrics.csat.labels(touch_point=touch_point)
        for kind in FEEDBACK_KINDS:
            metrics.journey.labels(kind=kind, touch_point=NONE, journey_stage=NONE)
        return metrics

    def observe_accepted(self, kind: str, event: Event) -> None:
        """Count a newly accepted feedback item (never a duplicate) by where in the journey it came from,
        and its survey scores. Orders carry no touch point and are not counted here."""
        if kind not in FEEDBACK_KINDS:
            return
        touch_point = getattr(event, "touch_point", None) or NONE
        self.journey.labels(kind=kind, touch_point=touch_point,
                            journey_stage=getattr(event, "journey_stage", None) or NONE).inc()
        survey = getattr(event, "survey", None)
        if isinstance(survey, SurveyScores):
            if survey.nps is not None:
                self.nps.labels(touch_point=touch_point).observe(survey.nps)
            if survey.csat is not None:
                self.csat.labels(touch_point=touch_point).observe(survey.csat)

    @staticmethod
    def source_label(source: str) -> str:
        return source if source in KNOWN_SOURCES else "other"
