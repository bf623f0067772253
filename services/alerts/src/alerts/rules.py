"""Pure alert decisions: whether to alert, how urgent, to whom, and what the CSM is told.

No I/O here; ``agents.py`` loads the inputs and stores the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from feedback_shared.events import AlertPriority, FeedbackScored
from feedback_shared.pii import redact

PRIORITIES: tuple[AlertPriority, ...] = ("low", "normal", "high", "critical")
TIER_WEIGHT = {"gold": 2, "silver": 1}

#: Seed 003: what to do, and never do, with an upset customer.
PLAYBOOK: tuple[str, ...] = (
    "Listen first; repeat back the key points and ask whether you understood correctly.",
    "Apologise, even if the fault was not yours.",
    "Offer at least two genuine options.",
    "Never tell the customer to calm down; never blame the customer.",
    "Give a date and time by which they will hear from you.",
)


@dataclass(frozen=True)
class Account:
    customer_id: str
    csm_id: str | None = None
    tier: str | None = None
    preferred_name: str | None = None
    preferred_channel: str | None = None
    language: str | None = None


def should_alert(scored: FeedbackScored) -> bool:
    """One negative item is enough (seed 004: most customers leave after one bad experience)."""
    return scored.sentiment.label == "negative"


def priority(scored: FeedbackScored, *, tier: str | None, earlier_cases: int) -> AlertPriority:
    """Priority rises with public visibility, anger/urgency, a low rating, recurrence and tier."""
    points = 1
    if scored.is_public:
        points += 1
    if max(scored.anger, scored.urgency) >= 0.5:
        points += 1
    if scored.rating is not None and scored.rating <= 1:
        points += 1
    if earlier_cases > 0:
        points += 1
    points += TIER_WEIGHT.get(tier or "", 0)
    if scored.sentiment.score > -0.3 and scored.sentiment.low_confidence:
        points -= 1
    index = 0 if points <= 0 else 1 if points == 1 else 2 if points <= 3 else 3
    return PRIORITIES[index]


def route(account: Account | None, fallback_csm_id: str) -> str:
    return account.csm_id if account and account.csm_id else fallback_csm_id


def notification_text(
    scored: FeedbackScored, *, priority_: AlertPriority, account: Account | None, alert_id: str, inbox_url: str
) -> tuple[str, str]:
    """Title and body of the page. Contact details in the text are masked: the CSM reaches the
    customer through the account, not through what they typed."""
    who = (account.preferred_name if account and account.preferred_name else None) or scored.author or "a customer"
    title = f"[{priority_}] Negative {scored.kind} from {who} on {scored.source}"
    needs = ", ".join(n.need for n in scored.needs) or "none detected"
    lines = [
        f"What they said ({scored.language or 'unknown language'}): {redact(scored.text)}",
        f"Sentiment: {scored.sentiment.label} ({scored.sentiment.score:+.2f}); needs: {needs}",
    ]
    if scored.rating is not None:
        lines.append(f"Rating: {scored.rating}/5")
    if account and account.tier:
        lines.append(f"Customer tier: {account.tier}")
    if scored.url:
        lines.append(f"Link: {scored.url}")
    lines.append("Playbook: " + " ".join(PLAYBOOK))
    lines.append(f"Case {alert_id}: {inbox_url}")
    return title, "\n".join(lines)
