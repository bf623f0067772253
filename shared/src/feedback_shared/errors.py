"""The project's exception tree.

    FeedbackError
     ├── DecodeError          a message on a topic is not a valid event (goes to the DLQ)
     └── DependencyUnavailable  the broker or the database cannot be reached (retry, or 503)
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
