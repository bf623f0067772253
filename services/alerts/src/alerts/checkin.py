"""The customer's answer to the check-in after resolution ("Is your problem solved?").

The check-in quotes the case's reference (the first 8 characters of its id) in its subject, as
``[1a2b3c4d]``, and in its body. The customer's reply comes back through ingest like any feedback (the
mail integration posts it, with ``thread_id`` set to the reference, or with the quoted subject in the
text) and lands here, on the case's thread:

- not solved (the reply is negative): the case opens again, with a new promise, and its CSM is paged;
- anything else: the answer is recorded on the resolved case, which stays resolved.

Only the case's own customer can answer it: a reference alone reopens nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from alerts.domain import Case
from alerts.rules import AlertPolicy, should_alert, sla_deadlines
from feedback_shared.events import FeedbackScored

#: How a case is quoted to the customer: the first 8 hex characters of its id.
REFERENCE_CHARS = 8
_REFERENCE = re.compile(r"^(?:case-)?([0-9a-f]{8})$")
_QUOTED = re.compile(r"\[([0-9a-f]{8})\]")


def case_reference(case_id: str) -> str:
    return case_id[:REFERENCE_CHARS]


def reference_in(scored: FeedbackScored) -> str | None:
    """The case reference the item answers: its ``thread_id`` (``1a2b3c4d`` or ``case-1a2b3c4d``), else a
    quoted subject (``[1a2b3c4d]``) in the first lines of its text. None for an item with no customer."""
    if not scored.customer_id:
        return None
    if scored.thread_id and (match := _REFERENCE.match(scored.thread_id.strip().lower())):
        return match.group(1)
    if match := _QUOTED.search(scored.text[:2000].lower()):
        return match.group(1)
    return None


@dataclass(frozen=True)
class CheckinAnswer:
    """What an item does to the resolved case it answers."""

    scored: FeedbackScored
    case: Case
    outcome: Literal["reopen", "answered"]
    fields: dict[str, Any]
    entry: dict[str, Any]


def answer_for(scored: FeedbackScored, ref: str, candidates: list[Case], policy: AlertPolicy,
               now: datetime) -> CheckinAnswer | None:
    """The answer ``scored`` gives to the resolved case of its customer that ``ref`` (its
    ``reference_in``) names, or None (no such case: the item goes the usual way)."""
    case = next((c for c in candidates if case_reference(c.id) == ref and c.customer_id == scored.customer_id
                 and c.kind == "case"), None)
    if case is None or case.status != "resolved":
        return None  # an open case takes the item as any other of its customer's
    item = str(scored.feedback_event_id)
    if should_alert(scored):
        target, promise = sla_deadlines(case.priority, case.channel, now, policy)
        fields = {"status": "open", "internal_target": target, "promised_by": promise, "escalated_at": None,
                  "breached_at": None, "outcome": None, "reopened_at": now,
                  "reopened_count": int(getattr(case, "reopened_count", 0) or 0) + 1}
        entry = {"action": "reopened", "by": {"customer_id": scored.customer_id}, "at": now,
                 "feedback_event_id": item, "reason": "the customer answered the check-in: not solved"}
        return CheckinAnswer(scored, case, "reopen", fields, entry)
    label = scored.sentiment.label
    entry = {"action": "checkin_answered", "by": {"customer_id": scored.customer_id}, "at": now,
             "feedback_event_id": item, "sentiment": label}
    return CheckinAnswer(scored, case, "answered", {"checkin_answer": label, "checkin_answered_at": now}, entry)
