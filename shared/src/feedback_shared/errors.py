"""The project's exception tree.

    FeedbackError
     ├── DecodeError            a message on a topic is not a valid event (goes to the DLQ)
     ├── DependencyUnavailable  the broker or the database cannot be reached (retry, or 503)
     ├── SignatureError         a webhook's signature is missing, wrong or stale (401)
     └── Conflict               a request contradicts what was already done (409)
          ├── InsufficientBalance   (loyalty) a redemption larger than the balance
          └── IdempotencyConflict   (loyalty) a key used again for a different request
"""

from __future__ import annotations


class FeedbackError(Exception):
    """Root of every error this project raises on purpose."""


class DecodeError(FeedbackError):
    """A message could not be decoded into the topic's event model."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"{topic}: {reason}")
        self.topic = topic
        self.reason = reason


class DependencyUnavailable(FeedbackError):
    """The broker or the database did not answer in time."""


class SignatureError(FeedbackError, ValueError):
    """A signed webhook's signature is missing, malformed, wrong or outside the time tolerance."""


class Conflict(FeedbackError):
    """A request that contradicts the state it meets (HTTP 409)."""
