"""In-memory fakes behind ingest's repository and publisher interfaces."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.errors import ServerSelectionTimeoutError

from feedback_shared.errors import DependencyUnavailable
from feedback_shared.events import Event
from feedback_shared.topics import TopicSpec
from ingest.repository import Claim, ClaimRequest


class FakeRepo:
    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}
        self.down = False

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]:
        if self.down:
            raise ServerSelectionTimeoutError("127.0.0.1:27017: timed out")
        claims = []
        for r in requests:
            doc = self.docs.setdefault((r.source, r.external_id), {"event_id": r.event_id, "status": "pending",
                                                                    "customer_id": r.customer_id})
            claims.append(Claim(doc["event_id"], doc["status"]))
        return claims

    def forget_customer(self, customer_id: str) -> int:
        gone = [k for k, d in self.docs.items() if d["customer_id"] == customer_id]
        for key in gone:
            del self.docs[key]
        return len(gone)

    def mark_published_many(self, keys: Sequence[tuple[str, str]]) -> None:
        for key in keys:
            self.docs[key]["status"] = "published"


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Event]] = []
        self.down = False

    def publish_many(self, messages: Sequence[tuple[TopicSpec[Any], Event]]) -> list[float | DependencyUnavailable]:
        if self.down:
            return [DependencyUnavailable("broker did not acknowledge: KafkaTimeoutError")] * len(messages)
        self.sent.extend((spec.name, event) for spec, event in messages)
        return [0.001] * len(messages)
