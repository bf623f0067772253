"""Versioned event models: the payloads that cross service lines.

Every event carries ``event_id`` (stable across retries), ``event_type``, ``schema_version``,
``occurred_at`` and ``ingested_at`` (aware UTC) and ``trace_id``. Models are frozen and ignore unknown
fields, so consumers tolerate additive changes; a breaking change is a new model and a new topic.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, Strict, field_validator

#: Namespace for ids derived from other ids (uuid5), so a retried derivation gives the same id.
DERIVED_ID_NAMESPACE = uuid.UUID("6f1c3f0e-3b5e-4a51-9c8e-2f0a6d1d9b11")

FeedbackKind = Literal["review", "mention", "complaint", "survey", "suggestion"]
SentimentLabel = Literal["negative", "neutral", "positive"]

#: The 16 customer needs (seed 002): 9 product needs, then 7 service needs.
PRODUCT_NEEDS: tuple[str, ...] = (
    "functionality", "price", "convenience", "experience", "design",
    "reliability", "performance", "efficiency", "compatibility",
)
SERVICE_NEEDS: tuple[str, ...] = (
    "empathy", "fairness", "transparency", "control", "options", "information", "accessibility",
)
NEEDS: tuple[str, ...] = PRODUCT_NEEDS + SERVICE_NEEDS
Need = Literal[
    "functionality", "price", "convenience", "experience", "design",
    "reliability", "performance", "efficiency", "compatibility",
    "empathy", "fairness", "transparency", "control", "options", "information", "accessibility",
]

#: Where the customer met the business (seed 000, L38-L47: "any situations, places and interfaces where a
#: buyer is in contact with the business"), plus ``other``: a touch point a source names that is not on
#: the list is kept as ``other``, never refused.
TOUCH_POINTS: tuple[str, ...] = (
    "advert", "store_sign", "catalogue", "store", "staff", "price_tags", "security", "product_display",
    "consultants", "product_use", "other",
)
TouchPoint = Literal[
    "advert", "store_sign", "catalogue", "store", "staff", "price_tags", "security", "product_display",
    "consultants", "product_use", "other",
]
JourneyStage = Literal["pre_purchase", "purchase", "post_purchase"]


def _touch_point(value: object) -> object:
    """Unknown touch points are kept as ``other`` (TP-1); spelling ("Price tags", "price-tags") is forgiven."""
    if value is None or not isinstance(value, str):
        return value
    slug = value.strip().lower().replace("-", "_").replace(" ", "_")[:64]
    return slug if slug in TOUCH_POINTS else "other"


KnownTouchPoint = Annotated[TouchPoint, BeforeValidator(_touch_point)]

#: The longest feedback text accepted, in characters (long e-mails and scraped articles fit).
MAX_TEXT_CHARS = 100_000

Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.\-]*$")]
ShortText = Annotated[str, Field(max_length=256)]


def _a_number(value: object) -> object:
    # pydantic's lax int reads JSON true and false as 1 and 0, and "5" as 5, where a request's document
    # says integer (schemathesis found nps: false taken). 5.0 is an integer in JSON Schema and stays one.
    if isinstance(value, bool | str):
        raise ValueError("a whole number is expected, not true, false or a string")
    return value


#: For a whole number in a request: a JSON number with no fraction (5 or 5.0), not true, false or "5". After
#: the field's constraints (``Annotated[int, Field(ge=1), NUMBER_ONLY]``): placed before them, pydantic writes
#: them into the document as "ge"/"le", which JSON Schema does not know, instead of minimum/maximum.
NUMBER_ONLY = BeforeValidator(_a_number)

#: A yes/no in a request: JSON true or false only. pydantic's lax mode reads 0, 1, "yes" or "off" as a flag,
#: where the document says boolean (schemathesis found is_public: 0 and override: 0 taken).
Flag = Annotated[bool, Strict()]

#: An e-mail address in a request: checked by the pattern its document shows, and by nothing else
#: (pydantic's EmailStr also refuses addresses the document calls valid, e.g. at reserved domains).
Email = Annotated[str, Field(max_length=254, pattern=r"^[A-Za-z0-9._%+'\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+$")]


def utcnow() -> datetime:
    return datetime.now(UTC)


def derived_id(*parts: object) -> uuid.UUID:
    """A deterministic id for something derived from other events (same inputs, same id)."""
    return uuid.uuid5(DERIVED_ID_NAMESPACE, "|".join(str(p) for p in parts))


class Event(BaseModel):
    """Fields every event has."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    schema_version: Literal[1] = 1
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    ingested_at: AwareDatetime = Field(default_factory=utcnow)
    trace_id: str = Field(default_factory=lambda: uuid.uuid4().hex, max_length=64)

    @field_validator("occurred_at", "ingested_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: no UTC datetime is that early
            raise ValueError("datetime is out of range once converted to UTC") from None

    def partition_key(self) -> str | None:
        """The Kafka key: one customer's events stay ordered on one partition."""
        return None


#: One other answer of a survey: question id → answer (bounded: a survey is not a document store).
SurveyQuestions = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=128)],
         # Numbers JSON carries exactly everywhere: a huge int or an infinite float would not decode again.
         Annotated[str, Field(max_length=2000)] | Annotated[int, Field(ge=-(2**53), le=2**53)]
         | Annotated[float, Field(allow_inf_nan=False)] | bool],
    Field(max_length=50),
]


class SurveyScores(BaseModel):
    """What a survey answer scored, carried on the feedback item its text became (kind ``survey``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    survey_id: Annotated[str, Field(min_length=1, max_length=128)]
    #: Net Promoter: 0-10 (9-10 promoter, 7-8 passive, 0-6 detractor).
    nps: Annotated[int, Field(ge=0, le=10)] | None = None
    #: Customer satisfaction: 1-5.
    csat: Annotated[int, Field(ge=1, le=5)] | None = None
    #: SUR-3, at this answer's touch point: the feeling the customer expected (desired), 1-5 ...
    expected: Annotated[int, Field(ge=1, le=5)] | None = None
    #: ... and the one they had (perceived), 1-5. The insights report the gap, perceived minus expected.
    perceived: Annotated[int, Field(ge=1, le=5)] | None = None
    questions: SurveyQuestions = Field(default_factory=dict)

    @property
    def expectation_gap(self) -> int | None:
        """Perceived minus expected (negative: it fell short), when the answer rated both."""
        if self.expected is None or self.perceived is None:
            return None
        return self.perceived - self.expected

    @property
    def nps_group(self) -> Literal["promoter", "passive", "detractor"] | None:
        if self.nps is None:
            return None
        return "promoter" if self.nps >= 9 else "passive" if self.nps >= 7 else "detractor"


class FeedbackFields(Event):
    """What a piece of feedback says, as received from any source."""

    source: Slug
    channel: Slug = "web"
    kind: FeedbackKind
    external_id: Annotated[str, Field(min_length=1, max_length=256)]
    customer_id: ShortText | None = None
    author: ShortText | None = None
    #: The text, NFC-normalised.
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    #: The text exactly as received, kept only when NFC normalisation changed it.
    text_original: str | None = None
    rating: Annotated[int, Field(ge=1, le=5)] | None = None
    #: Declared by the source; the sentiment stage detects its own.
    language: ShortText | None = None
    url: Annotated[str, Field(max_length=2048)] | None = None
    is_public: bool = False
    product_id: ShortText | None = None
    order_id: ShortText | None = None
    thread_id: ShortText | None = None
    #: Where and when in the journey the customer met the business (additive; TP-1).
    touch_point: KnownTouchPoint | None = None
    journey_stage: JourneyStage | None = None
    #: Kind ``survey`` only: the answer's scores (NPS, CSAT, other answers).
    survey: SurveyScores | None = None

    def partition_key(self) -> str | None:
        return self.customer_id or self.author or f"{self.source}:{self.external_id}"


class FeedbackReceived(FeedbackFields):
    event_type: Literal["feedback.received"] = "feedback.received"


class SentimentResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    label: SentimentLabel
    #: P(positive) - P(negative), in -1..1.
    score: Annotated[float, Field(ge=-1.0, le=1.0)]
    probabilities: dict[SentimentLabel, Annotated[float, Field(ge=0.0, le=1.0)]]
    confidence: Annotated[float, Field(ge=0.0, le=1.0)]
    low_confidence: bool = False
    low_confidence_reasons: list[str] = Field(default_factory=list)
    #: The text was longer than the model reads (512 tokens): only its first ``scored_chars``
    #: characters were scored. The whole text is kept on the event.
    truncated: bool = False
    scored_chars: Annotated[int, Field(ge=0)] | None = None


class NeedScore(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    need: Need
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    #: How the writer feels about this need, which can differ from the text's overall label ("great food,
    #: awful prices": price is negative). Additive: events written before it existed read as "neutral".
    sentiment: SentimentLabel = "neutral"


class FeedbackScored(FeedbackFields):
    """The received feedback plus what the sentiment stage found."""

    event_type: Literal["feedback.scored"] = "feedback.scored"
    #: ``event_id`` of the ``FeedbackReceived`` this scores.
    feedback_event_id: uuid.UUID
    language: ShortText | None = None
    language_confidence: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    sentiment: SentimentResult
    needs: Annotated[list[NeedScore], Field(max_length=3)] = Field(default_factory=list)
    urgency: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    anger: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    #: complaint | suggestion | question | praise | comment (additive: absent on older events).
    feedback_type: ShortText | None = None
    model_version: str


class SurveyAnswered(Event):
    """A survey answer that carries no text (scores only), on ``surveys.answered.v1``. An answer with text
    travels instead as ``FeedbackReceived`` of kind ``survey`` with its ``survey`` scores, so each answer
    is on exactly one topic and NPS/CSAT read models count each once."""

    event_type: Literal["survey.answered"] = "survey.answered"
    source: Slug = "survey"
    channel: Slug = "web"
    #: The answer's id at the source (with ``source``, what makes a resend a duplicate).
    external_id: Annotated[str, Field(min_length=1, max_length=256)]
    customer_id: ShortText | None = None
    language: ShortText | None = None
    touch_point: KnownTouchPoint | None = None
    journey_stage: JourneyStage | None = None
    survey: SurveyScores

    def partition_key(self) -> str | None:
        return self.customer_id or f"{self.source}:{self.external_id}"


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    sku: ShortText
    quantity: Annotated[int, Field(ge=1)] = 1
    price: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)] | None = None


class CommerceFields(Event):
    order_id: Annotated[str, Field(min_length=1, max_length=256)]
    customer_id: Annotated[str, Field(min_length=1, max_length=256)]
    amount: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    items: list[OrderLine] | None = None

    def partition_key(self) -> str | None:
        return self.customer_id


class PurchaseRecorded(CommerceFields):
    event_type: Literal["purchase.recorded"] = "purchase.recorded"


class OrderReturned(CommerceFields):
    event_type: Literal["order.returned"] = "order.returned"


CommerceEvent = Annotated[PurchaseRecorded | OrderReturned, Field(discriminator="event_type")]

#: ``waiting_on_customer``: the CSM asked the customer something; the SLA clock stops until they write.
AlertStatus = Literal["open", "acknowledged", "responded", "waiting_on_customer", "resolved"]
AlertPriority = Literal["low", "normal", "high", "critical"]


class AlertFields(Event):
    alert_id: str
    feedback_event_id: uuid.UUID
    customer_id: ShortText | None = None
    csm_id: ShortText | None = None
    priority: AlertPriority
    status: AlertStatus
    needs: list[str] = Field(default_factory=list)
    event_count: int = 1

    def partition_key(self) -> str | None:
        return self.customer_id or self.alert_id


class AlertRaised(AlertFields):
    event_type: Literal["alert.raised"] = "alert.raised"


class AlertUpdated(AlertFields):
    event_type: Literal["alert.updated"] = "alert.updated"
    #: What changed: ``status:acknowledged``, ``note``, ``reassigned``, ``root_cause``, ``reply:email``…
    action: Annotated[str, Field(max_length=200)] | None = None
    #: Who did it: the principal's token id (and CSM id), for the audit trail. None: the system.
    actor: ShortText | None = None


AlertEvent = Annotated[AlertRaised | AlertUpdated, Field(discriminator="event_type")]


class PointsFields(Event):
    customer_id: ShortText
    #: The ledger entry this event announces (unique per source event and rule).
    entry_id: str
    rule: Slug
    points: int
    source_event_id: uuid.UUID
    balance: int
    tier: Slug
    order_id: ShortText | None = None
    surprise: bool = False

    def partition_key(self) -> str | None:
        return self.customer_id


class PointsAwarded(PointsFields):
    event_type: Literal["points.awarded"] = "points.awarded"


class PointsReversed(PointsFields):
    event_type: Literal["points.reversed"] = "points.reversed"


class CustomerErasureRequested(Event):
    """A customer asked to be forgotten: each service deletes or anonymises what it holds on them."""

    event_type: Literal["customer.erasure_requested"] = "customer.erasure_requested"
    customer_id: ShortText

    def partition_key(self) -> str | None:
        return self.customer_id


def erased_with(ingested_at: datetime, erased_at: datetime | None) -> bool:
    """Whether an item taken in at ``ingested_at`` falls under an erasure requested at ``erased_at``:
    everything taken in up to the request does, even if it reaches a service after the erasure (the
    request travels on its own topic, so nothing orders the two)."""
    return erased_at is not None and ingested_at <= erased_at


class TierChanged(Event):
    """A customer's tier moved (tiers follow points earned over a rolling window, not the balance)."""

    event_type: Literal["tier.changed"] = "tier.changed"
    customer_id: ShortText
    previous_tier: Slug | None
    tier: Slug
    points_earned: int

    def partition_key(self) -> str | None:
        return self.customer_id


PointsEvent = Annotated[PointsAwarded | PointsReversed | TierChanged, Field(discriminator="event_type")]


class CustomerProfileUpdated(Event):
    """How a customer wants to be addressed and reached; published by the service that owns accounts."""

    event_type: Literal["customer.profile_updated"] = "customer.profile_updated"
    customer_id: ShortText
    preferred_name: ShortText | None = None
    first_name_permitted: bool = False
    language: ShortText | None = None
    preferred_channel: ShortText | None = None
    tier: ShortText | None = None

    def partition_key(self) -> str | None:
        return self.customer_id


class CustomerThanked(Event):
    """A thank-you to send the customer, e.g. with every loyalty reward (seed 000: a personal thank-you)."""

    event_type: Literal["customer.thanked"] = "customer.thanked"
    customer_id: ShortText
    addressed_to: ShortText
    message: Annotated[str, Field(max_length=2000)]
    reason: Slug
    points: int = 0
    language: ShortText | None = None

    def partition_key(self) -> str | None:
        return self.customer_id


class FollowUpDue(Event):
    """A contact that is due by ``due_at`` (seed 000: confirm the choice within 24 hours of a purchase)."""

    event_type: Literal["followup.due"] = "followup.due"
    customer_id: ShortText
    reason: Slug
    due_at: AwareDatetime
    order_id: ShortText | None = None

    def partition_key(self) -> str | None:
        return self.customer_id


CustomerNotification = Annotated[CustomerThanked | FollowUpDue, Field(discriminator="event_type")]
