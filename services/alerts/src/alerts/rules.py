"""Pure alert decisions: whether to alert, how urgent, to whom, and what the CSM is told.

No I/O here; ``agents.py`` loads the inputs and stores the outcome.
"""

from __future__ import annotations

import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alerts.domain import Account, Case
from feedback_shared.events import AlertPriority, FeedbackScored
from feedback_shared.pii import redact

PRIORITIES: tuple[AlertPriority, ...] = ("low", "normal", "high", "critical")


class _Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PriorityWeights(_Policy):
    public: int = 1
    anger_or_urgency: int = 1
    low_rating: int = 1
    recurrence: int = 1
    tier: dict[str, int] = Field(default_factory=lambda: {"gold": 2, "silver": 1})


def _default_promises() -> dict[AlertPriority, float]:
    return {"critical": 60, "high": 240, "normal": 1440, "low": 2880}


class SlaPolicy(_Policy):
    internal_ratio: float = Field(default=0.75, gt=0, le=1)
    promise_minutes: dict[AlertPriority, float] = Field(default_factory=_default_promises)
    channel_promise_minutes: dict[str, float] = Field(default_factory=dict)


class SpikePolicy(_Policy):
    window_minutes: float = Field(default=15, gt=0)
    threshold: int = Field(default=10, ge=1)


class ChannelPolicy(_Policy):
    callback_after_minutes: float = 15
    phone_queue_wait_minutes: float = 0


class AlertPolicy(_Policy):
    """The operator's alert rules (``policy.toml``)."""

    cooldown_minutes: float = Field(default=30, ge=0)
    priority: PriorityWeights = Field(default_factory=PriorityWeights)
    sla: SlaPolicy = Field(default_factory=SlaPolicy)
    spike: SpikePolicy = Field(default_factory=SpikePolicy)
    channel: ChannelPolicy = Field(default_factory=ChannelPolicy)


def load_policy(path: Path) -> AlertPolicy:
    with path.open("rb") as fh:
        return AlertPolicy.model_validate(tomllib.load(fh))

#: Seed 003: what to do, and never do, with an upset customer.
PLAYBOOK: tuple[str, ...] = (
    "Listen first; repeat back the key points and ask whether you understood correctly.",
    "Apologise, even if the fault was not yours.",
    "Offer at least two genuine options.",
    "Never tell the customer to calm down; never blame the customer.",
    "Give a date and time by which they will hear from you.",
)


def needs_negative_first(scored: FeedbackScored) -> list[str]:
    """The item's needs, those the writer is negative about first (then by score): "great food, awful
    prices" is a case about price."""
    order = {"negative": 0, "neutral": 1, "positive": 2}
    return [n.need for n in sorted(scored.needs, key=lambda n: (order[n.sentiment], -n.score))]


def should_alert(scored: FeedbackScored) -> bool:
    """One negative item is enough (seed 004: most customers leave after one bad experience). A survey
    answer that scores the business low says so whatever its words: a detractor (NPS 0-6) or a CSAT of
    1-2 with a text opens a case like any negative item."""
    if scored.sentiment.label == "negative":
        return True
    survey = scored.survey
    return survey is not None and (survey.nps_group == "detractor" or (survey.csat is not None and survey.csat <= 2))


def priority(scored: FeedbackScored, *, tier: str | None, earlier_cases: int,
             policy: AlertPolicy | None = None) -> AlertPriority:
    """Priority rises with public visibility, anger/urgency, a low rating, recurrence and tier."""
    weights = (policy or AlertPolicy()).priority
    points = 1
    if scored.is_public:
        points += weights.public
    if max(scored.anger, scored.urgency) >= 0.5:
        points += weights.anger_or_urgency
    if scored.rating is not None and scored.rating <= 1:
        points += weights.low_rating
    if earlier_cases > 0:
        points += weights.recurrence
    points += weights.tier.get(tier or "", 0)
    if scored.sentiment.score > -0.3 and scored.sentiment.low_confidence:
        points -= 1
    index = 0 if points <= 0 else 1 if points == 1 else 2 if points <= 3 else 3
    return PRIORITIES[index]


def sla_deadlines(prio: AlertPriority, channel: str | None, opened_at: datetime,
                  policy: AlertPolicy) -> tuple[datetime, datetime]:
    """(internal target, promised by): the promise for the priority or channel, whichever is sooner,
    and the internal target a fraction of it (seed 000: promise 60 minutes, deliver in 45)."""
    minutes = policy.sla.promise_minutes[prio]
    if channel and channel in policy.sla.channel_promise_minutes:
        minutes = min(minutes, policy.sla.channel_promise_minutes[channel])
    promise = timedelta(minutes=minutes)
    return opened_at + promise * policy.sla.internal_ratio, opened_at + promise


def sla_due(case: Case, now: datetime) -> tuple[bool, bool]:
    """(escalate now, breach now) for an unresolved case: each happens once."""
    if case.status in ("resolved", "waiting_on_customer"):
        # Waiting on the customer stops the clock; it starts again, shifted, when they write.
        return False, False
    target, promise = case.internal_target, case.promised_by
    escalate = target is not None and now >= target and case.escalated_at is None
    breach = promise is not None and now >= promise and case.breached_at is None
    return escalate, breach


def resume_fields(case: Case, now: datetime) -> dict[str, Any]:
    """What a waiting case becomes when the customer writes again: its earlier status, and its promise
    and internal target moved on by the time spent waiting (the clock did not run meanwhile)."""
    paused = now - case.waiting_since if case.waiting_since else timedelta(0)
    fields: dict[str, Any] = {"status": case.status_before_waiting or "acknowledged"}
    if case.promised_by is not None:
        fields["promised_by"] = case.promised_by + paused
    if case.internal_target is not None:
        fields["internal_target"] = case.internal_target + paused
    return fields


def recommended_channel(scored: FeedbackScored, account: Account | None, policy: AlertPolicy) -> str:
    """Seed 002's decision table: how the CSM should get back to this customer."""
    if scored.is_public and scored.kind == "mention":
        return "social_reply"  # answer where it was said, quickly; take details private after
    if max(scored.anger, scored.urgency) >= 0.5:
        # An angry or urgent customer gets a person on the phone, or a callback if the queue is long.
        if policy.channel.phone_queue_wait_minutes > policy.channel.callback_after_minutes:
            return "callback"
        return "phone"
    if account and account.preferred_channel:
        return account.preferred_channel
    return "email"


def route(account: Account | None, fallback_csm_id: str) -> str:
    return account.csm_id if account and account.csm_id else fallback_csm_id


def notification_text(
    scored: FeedbackScored, *, priority_: AlertPriority, account: Account | None, alert_id: str, inbox_url: str,
    channel: str = "email", promised_by: datetime | None = None, earlier_cases: int = 0,
) -> tuple[str, str]:
    """Title and body of the page. Contact details in the text are masked: the CSM reaches the
    customer through the account, not through what they typed."""
    who = (account.preferred_name if account and account.preferred_name else None) or scored.author or "a customer"
    survey = scored.survey
    if survey is not None and scored.sentiment.label != "negative":
        score = f"NPS {survey.nps}" if survey.nps is not None else f"CSAT {survey.csat}/5"
        title = f"[{priority_}] Low survey score ({score}) from {who}"
    else:
        title = f"[{priority_}] Negative {scored.kind} from {who} on {scored.source}"
    polarity: dict[str, str] = {n.need: n.sentiment for n in scored.needs}
    needs = ", ".join(f"{need} ({polarity[need]})" for need in needs_negative_first(scored)) or "none detected"
    lines = [
        f"What they said ({scored.language or 'unknown language'}): {redact(scored.text)}",
        f"Sentiment: {scored.sentiment.label} ({scored.sentiment.score:+.2f}); needs: {needs}",
    ]
    if scored.rating is not None:
        lines.append(f"Rating: {scored.rating}/5")
    if survey is not None:
        scores = [f"NPS {survey.nps}/10 ({survey.nps_group})" if survey.nps is not None else "",
                  f"CSAT {survey.csat}/5" if survey.csat is not None else ""]
        lines.append(f"Survey {survey.survey_id}: " + ", ".join(s for s in scores if s))
    if scored.touch_point:
        lines.append(f"Touch point: {scored.touch_point.replace('_', ' ')}"
                     + (f" ({scored.journey_stage.replace('_', ' ')})" if scored.journey_stage else ""))
    if account and account.tier:
        lines.append(f"Customer tier: {account.tier}")
    if earlier_cases:
        lines.append(f"Earlier cases: {earlier_cases}")
    lines.append(f"Recommended channel: {channel.replace('_', ' ')}")
    if promised_by is not None:
        lines.append(f"Answer promised by: {promised_by.isoformat(timespec='minutes')}")
    if scored.url:
        lines.append(f"Link: {scored.url}")
    lines.append("Playbook: " + " ".join(PLAYBOOK))
    lines.append(f"Case {alert_id}: {inbox_url}")
    return title, "\n".join(lines)
