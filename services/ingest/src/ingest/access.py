"""What an integration's token may write: pure rules over a principal and a submission."""

from __future__ import annotations

from feedback_shared.auth import Principal
from feedback_shared.topics import COMMERCE_EVENTS
from ingest.service import Submission


def refusal(principal: Principal, submission: Submission) -> str | None:
    """Why ``principal`` may not write ``submission`` (a 403's detail), or None when it may."""
    if not principal.can("ingest.write"):
        return f"role {principal.role!r} may not write feedback"
    if submission.spec is COMMERCE_EVENTS:
        # Orders name no feedback source: the commerce permission alone decides.
        if principal.role != "admin" and not principal.commerce:
            return "this token may not send purchases or returns (commerce is not allowed for it)"
        return None
    if not principal.may_write_source(submission.source):
        return f"this token may not write for source {submission.source!r} (allowed: {', '.join(principal.sources)})"
    return None
