"""Timeline entries from the events alerts sees: pure builders, one entry per source event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedback_shared.events import FeedbackScored, OrderReturned, PurchaseRecorded

Entry = dict[str, Any]


def feedback_entry(scored: FeedbackScored) -> Entry | None:
    if not scored.customer_id:
        return None
    return {"_id": f"feedback:{scored.feedback_event_id}", "customer_id": scored.customer_id,
            "at": scored.ingested_at, "kind": "feedback", "source": scored.source, "feedback_kind": scored.kind,
            "text": scored.text[:1000], "language": scored.language, "sentiment": scored.sentiment.label,
            "score": scored.sentiment.score, "rating": scored.rating,
            "needs": [{"need": n.need, "sentiment": n.sentiment} for n in scored.needs]}


def commerce_entry(event: PurchaseRecorded | OrderReturned) -> Entry:
    kind = "purchase" if isinstance(event, PurchaseRecorded) else "return"
    return {"_id": f"{kind}:{event.event_id}", "customer_id": event.customer_id, "at": event.occurred_at,
            "kind": kind, "order_id": event.order_id, "amount": str(event.amount), "currency": event.currency}


def points_entry(event: Any) -> Entry | None:
    """A loyalty event (points awarded or taken, a tier change)."""
    customer_id = getattr(event, "customer_id", None)
    if not customer_id:
        return None
    entry: Entry = {"_id": f"points:{event.event_id}", "customer_id": customer_id, "at": event.ingested_at,
                    "kind": "tier" if event.event_type == "tier.changed" else "points"}
    if event.event_type == "tier.changed":
        entry.update(tier=event.tier, previous_tier=event.previous_tier)
    else:
        entry.update(rule=getattr(event, "rule", None), points=getattr(event, "points", 0))
    return entry


def reply_entry(customer_id: str, case_id: str, reply: dict[str, Any]) -> Entry:
    return {"_id": f"reply:{reply['reply_id']}", "customer_id": customer_id, "at": reply["at"], "kind": "reply",
            "case_id": case_id, "channel": reply["channel"], "text": reply["text"][:1000]}


#: How many of the customer's latest scores the satisfaction index averages.
SATISFACTION_WINDOW = 10


def satisfaction_index(entries: Sequence[Entry], window: int = SATISFACTION_WINDOW) -> dict[str, Any] | None:
    """The rolling mean of the customer's last ``window`` sentiment scores (-1..1), from their timeline's
    feedback entries; None before their first scored item."""
    scores = [e["score"] for e in sorted((e for e in entries if e.get("kind") == "feedback"
                                          and isinstance(e.get("score"), int | float)),
                                         key=lambda e: e["at"], reverse=True)[:window]]
    if not scores:
        return None
    return {"index": round(sum(scores) / len(scores), 3), "scores": len(scores), "window": window}
