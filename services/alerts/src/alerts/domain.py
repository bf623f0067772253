"""Alerts' typed records: cases, accounts, CSMs and outbox deliveries, as the core and the stores use them.

No I/O here. The stores turn documents into these records and back (``Case.from_doc`` / ``to_doc``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from feedback_shared.events import AlertPriority, AlertStatus, FeedbackScored

OPEN_STATUSES: tuple[AlertStatus, ...] = ("open", "acknowledged", "responded", "waiting_on_customer")
STATUSES: tuple[AlertStatus, ...] = get_args(AlertStatus)
#: ``churn_risk``: an active customer gone silent (no message to the customer comes of it).
CaseKind = Literal["case", "crisis", "churn_risk"]


class Snapshot(BaseModel):
    """One item of a case as the CSM sees it: the text, where it came from and how it scored."""

    model_config = ConfigDict(frozen=True, extra="allow")

    feedback_event_id: str | None = None
    text: str = ""
    language: str | None = None
    source: str | None = None
    kind: str | None = None
    url: str | None = None
    rating: int | None = None
    sentiment: dict[str, Any] | None = None
    needs: list[dict[str, Any]] = Field(default_factory=list)
    anger: float = 0.0
    #: Whose item this is, on a crisis case's excerpt (other cases have it on the case itself).
    customer_id: str | None = None
    urgency: float = 0.0
    occurred_at: datetime | None = None

    @classmethod
    def of(cls, scored: FeedbackScored) -> Snapshot:
        return cls(
            feedback_event_id=str(scored.feedback_event_id), text=scored.text, language=scored.language,
            source=scored.source, kind=scored.kind, url=scored.url, rating=scored.rating,
            sentiment=scored.sentiment.model_dump(), needs=[n.model_dump() for n in scored.needs],
            anger=scored.anger, urgency=scored.urgency, occurred_at=scored.occurred_at,
        )


class Case(BaseModel):
    """A case: one customer's (or one thread's) negative items, routed to a CSM, with its SLA clock.
    Fields added later (by the API, by later versions) are kept as extras."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    id: str = Field(alias="_id")
    kind: CaseKind = "case"
    feedback_event_ids: list[str] = Field(default_factory=list)
    first_feedback_event_id: str | None = None
    customer_id: str | None = None
    thread_id: str | None = None
    channel: str | None = None
    csm_id: str
    priority: AlertPriority
    status: AlertStatus = "open"
    needs: list[str] = Field(default_factory=list)
    event_count: int = 1
    earlier_cases: int = 0
    recommended_channel: str = "email"
    internal_target: datetime | None = None
    promised_by: datetime | None = None
    escalated_at: datetime | None = None
    breached_at: datetime | None = None
    paged: bool = False
    latest: Snapshot | None = None
    first: Snapshot | None = None
    feedback_ingested_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    trace_id: str | None = None
    #: The customer's erasure mark when the case opened: items from before it must not join the case.
    customer_erased_at: datetime | None = None
    #: When the case's texts were erased at the customer's request.
    erased_at: datetime | None = None
    #: Waiting on the customer since (the SLA clock is stopped), and the status to go back to.
    waiting_since: datetime | None = None
    status_before_waiting: AlertStatus | None = None
    #: The need a CSM named as the root cause, and how the case ended.
    root_cause: str | None = None
    outcome: str | None = None
    #: Who did what, and when: ``{"action", "by", "at", ...}``, oldest first.
    history: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Case:
        return cls.model_validate(doc)

    def to_doc(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


@dataclass(frozen=True)
class Account:
    """What alerts knows of a customer: the account an admin set up, the tier loyalty announced, and
    their erasure mark."""

    customer_id: str
    csm_id: str | None = None
    tier: str | None = None
    preferred_name: str | None = None
    preferred_channel: str | None = None
    language: str | None = None
    email: str | None = None
    time_zone: str | None = None
    first_name_permitted: bool = False
    marketing_consent: bool = False
    #: When the customer asked to be forgotten (the request's ingest time): items from before it that
    #: arrive later (they were in flight on another topic) must not bring their text back.
    erased_at: datetime | None = None


@dataclass(frozen=True)
class Csm:
    csm_id: str
    notify: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delivery:
    """A message for the outbox: an Apprise page (``title``, ``body``) or a signed webhook (``payload``).
    ``delivery_id`` is derived from what it is for, so deciding it twice enqueues it once."""

    delivery_id: str
    kind: Literal["apprise", "webhook"]
    alert_id: str
    url: str
    title: str = ""
    body: str = ""
    msg_id: str | None = None
    payload: str | None = None
    feedback_ingested_at: datetime | None = None
    #: The customer a message to a customer is for (thank-you, follow-up, reply): what their erasure blanks.
    customer_id: str | None = None

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "alert_id": self.alert_id, "url": self.url}
        if self.customer_id:
            doc["customer_id"] = self.customer_id
        if self.kind == "webhook":
            doc.update(msg_id=self.msg_id, payload=self.payload)
        else:
            doc.update(title=self.title, body=self.body, feedback_ingested_at=self.feedback_ingested_at)
        return doc
