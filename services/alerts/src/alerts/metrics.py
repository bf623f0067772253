from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

from alerts.customer_contact import CONTACT_KINDS, CONTACT_OUTCOMES
from alerts.rules import PRIORITIES
from feedback_shared.metrics import LATENCY_BUCKETS, dlq_counter, latency_histogram, stall_counter

#: The insights read model's consumers (their consumer groups): scored feedback, and text-less survey answers.
InsightsConsumer = Literal["alerts.insights", "alerts.insights_surveys"]
INSIGHTS_CONSUMERS: tuple[InsightsConsumer, ...] = ("alerts.insights", "alerts.insights_surveys")
#: recorded: new in the read model; duplicate: stored already (a redelivery) or twice in the batch.
INSIGHT_OUTCOMES = ("recorded", "duplicate")


@dataclass(frozen=True)
class AlertsMetrics:
    handled: Counter
    raised: Counter
    case_updates: Counter
    notifications: Counter
    feedback_to_alert: Histogram
    escalations: Counter
    breaches: Counter
    erased_skipped: Counter
    dlq: Counter
    stalls: Counter
    findings_overridden: Counter
    replies: Counter
    checkin_answers: Counter
    silent_customers: Counter
    customer_messages: Counter
    followups_late: Counter
    insight_items: Counter
    insights_write: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> AlertsMetrics:
        m = cls(
            handled=Counter("alerts_feedback_handled", "Scored items the alert rules have looked at.",
                            registry=registry),
            raised=Counter("alerts_raised", "New cases opened, by priority.", ["priority"], registry=registry),
            case_updates=Counter("alert_case_updates", "Negative items added to an already open case.",
                                 registry=registry),
            notifications=Counter("alert_notifications", "Notification attempts, by channel and outcome.",
                                  ["channel", "outcome"], registry=registry),
            feedback_to_alert=latency_histogram(
                "feedback_to_alert_seconds", "From ingestion to the CSM notification being delivered.",
                registry),
            escalations=Counter("sla_escalations", "Cases escalated to a manager at their internal target.",
                                registry=registry),
            breaches=Counter("sla_breaches", "Cases not resolved by the time promised to the customer.",
                             registry=registry),
            erased_skipped=Counter(
                "alerts_erased_skipped", "Negative items from before their customer's erasure that reached "
                "alerts after it: dropped, not made into a case.", registry=registry),
            dlq=dlq_counter(registry),
            stalls=stall_counter(registry),
            findings_overridden=Counter("reply_findings_overridden", "Reply-check findings a CSM sent anyway "
                                        "(override), by code.", ["code"], registry=registry),
            replies=Counter("replies_sent", "Replies to customers handed to the outbox, by channel.", ["channel"],
                            registry=registry),
            customer_messages=Counter(
                "customer_messages", "Messages to customers (acknowledgement, delay notice, thank-you, follow-up, "
                "check-in), by kind and outcome: sent (in the outbox), duplicate (there already), skipped_*.",
                ["kind", "outcome"], registry=registry),
            checkin_answers=Counter(
                "checkin_answers", "Customers' answers to the check-in after resolution: reopen (not solved), "
                "answered (recorded on the resolved case).", ["outcome"], registry=registry),
            silent_customers=Counter(
                "churn_risk_cases", "Low-priority churn-risk cases opened for active customers gone silent.",
                registry=registry),
            followups_late=Counter("followups_late", "Purchase follow-ups put in the outbox after their due time.",
                                   registry=registry),
            insight_items=Counter(
                "alerts_insight_items", "Items the insights consumers gave the read model, by consumer and outcome: "
                "recorded (new), duplicate (stored already, or twice in one batch).", ["consumer", "outcome"],
                registry=registry),
            insights_write=Histogram(
                "alerts_insights_write_seconds", "How long one batch took to write into the insights read model "
                "(one transaction), by consumer.", ["consumer"], buckets=LATENCY_BUCKETS, registry=registry),
        )
        for consumer in INSIGHTS_CONSUMERS:
            m.insights_write.labels(consumer=consumer)
            for outcome in INSIGHT_OUTCOMES:
                m.insight_items.labels(consumer=consumer, outcome=outcome)
        for outcome in ("reopen", "answered"):
            m.checkin_answers.labels(outcome=outcome)
        for p in PRIORITIES:
            m.raised.labels(priority=p)
        for kind in CONTACT_KINDS:
            for outcome in CONTACT_OUTCOMES:
                m.customer_messages.labels(kind=kind, outcome=outcome)
        return m
