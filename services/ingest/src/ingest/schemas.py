"""HTTP request and response models. Requests forbid unknown fields, so a typo is a clear 422."""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from feedback_shared.events import (
    MAX_TEXT_CHARS,
    NUMBER_ONLY,
    TOUCH_POINTS,
    Email,
    Flag,
    JourneyStage,
    KnownTouchPoint,
    Slug,
    SurveyQuestions,
)

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]


def _utc_representable(value: datetime) -> datetime:
    try:
        value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: events carry UTC, and no UTC datetime is that early
        raise ValueError("datetime is out of range once converted to UTC") from None
    return value


#: RFC 3339, as the document's ``format: date-time`` says: pydantic alone also reads a number, or a
#: string of digits, as seconds since 1970 (``occurred_at: 0`` would be 1970-01-01, almost always a
#: client's bug), and a space for the "T". Sources' other forms are converted by their adapters.
RFC3339 = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$")


def _iso_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        raise ValueError("a timestamp is an RFC 3339 string with an offset, e.g. 2026-11-01T09:30:00Z")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_utc_representable)]

AMOUNT_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,4})?$"
AMOUNT_MAX = Decimal("9999999999.9999")
_CENT_FRACTION = Decimal("0.0001")


def _amount(value: Any) -> Any:
    """A JSON number is rounded to 4 decimal places (a float carries no exact cents: 0.1 + 0.2 is
    0.30000000000000004); a string is taken exactly, so it must have at most 4."""
    if isinstance(value, bool):
        raise ValueError("an amount is a number or a decimal string, not a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("an amount is a finite number")
        if value < 0:  # before rounding: -1e-300 would round to 0 and pass as a price
            raise ValueError("an amount is not negative")
        exact = Decimal(repr(value))
        return exact.quantize(_CENT_FRACTION, ROUND_HALF_EVEN) if abs(exact) <= AMOUNT_MAX else exact
    if isinstance(value, str) and not re.fullmatch(AMOUNT_PATTERN, value):
        raise ValueError("an amount string is digits with at most 4 decimal places, e.g. '19.90'")
    return value


#: Money: what the document says is exactly what is accepted (pydantic's own schema for a Decimal
#: documents any numeric string, and no bound from max_digits).
Amount = Annotated[
    Decimal,
    BeforeValidator(_amount),
    Field(ge=0, max_digits=14, decimal_places=4),
    WithJsonSchema({"anyOf": [
        {"type": "number", "minimum": 0, "maximum": float(AMOUNT_MAX)},
        {"type": "string", "pattern": AMOUNT_PATTERN},
    ], "description": "A number (rounded to 4 decimal places) or a decimal string (at most 4), e.g. 19.90"}),
]
Id = Annotated[str, Field(min_length=1, max_length=256)]
Short = Annotated[str, Field(max_length=256)]

TOUCH_POINT_MAX_CHARS = 256


def _bounded_touch_point(value: Any) -> Any:
    # Checked before the name is read: a longer value is refused, as documented, not kept as "other".
    if isinstance(value, str) and len(value) > TOUCH_POINT_MAX_CHARS:
        raise ValueError(f"a touch point is at most {TOUCH_POINT_MAX_CHARS} characters")
    return value


#: Where the customer met the business. Documented as a string, not an enum: a value not on the list is
#: kept as ``other`` (TP-1), never refused, so a source's own names never cost it the item.
TouchPointIn = Annotated[
    KnownTouchPoint,
    BeforeValidator(_bounded_touch_point),
    WithJsonSchema({"type": "string", "maxLength": TOUCH_POINT_MAX_CHARS, "examples": ["store", "consultants"],
                    "description": "One of " + ", ".join(TOUCH_POINTS) + "; any other value is kept as "
                    "'other' (spelling is forgiven: 'Price tags' is price_tags)."}),
]
NpsScore = Annotated[int, Field(ge=0, le=10, description="Net Promoter answer: 0-10."), NUMBER_ONLY]
CsatScore = Annotated[int, Field(ge=1, le=5, description="Customer satisfaction: 1-5."), NUMBER_ONLY]
ExpectedFeeling = Annotated[int, Field(ge=1, le=5, description="SUR-3: the feeling the customer expected (desired) "
                                       "at this touch point: 1-5."), NUMBER_ONLY]
PerceivedFeeling = Annotated[int, Field(ge=1, le=5, description="SUR-3: the feeling the customer had (perceived) at "
                                        "this touch point: 1-5. The insights report perceived minus expected."), NUMBER_ONLY]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class _Journey(_Request):
    """Where and when in the journey the customer met the business: optional on every feedback item."""

    touch_point: TouchPointIn | None = None
    journey_stage: JourneyStage | None = None


class _ItemIn(_Journey):
    """What a review and a suggestion both say: the text, who wrote it, about what, where and when. Each
    kind adds its own source, id rule, channel and visibility (their defaults differ)."""

    text: Text
    customer_id: Short | None = None
    author: Short | None = None
    language: Short | None = None
    url: Annotated[str, Field(max_length=2048)] | None = None
    product_id: Short | None = None
    order_id: Short | None = None
    thread_id: Short | None = None
    occurred_at: Instant | None = None


class ReviewIn(_ItemIn):
    """A product or service review from a review site, an app store or the shop itself."""

    source: Slug = Field(examples=["google"])
    external_id: Id = Field(description="The review's id at the source; the same id twice is a duplicate.")
    rating: Annotated[int, Field(ge=1, le=5), NUMBER_ONLY] | None = None
    channel: Slug = "review_site"
    is_public: Flag = True


class MentionIn(_Journey):
    """A social-media mention."""

    source: Slug = Field(examples=["x"])
    external_id: Id
    text: Text
    author: Short | None = None
    customer_id: Short | None = None
    language: Short | None = None
    url: Annotated[str, Field(max_length=2048)] | None = None
    thread_id: Short | None = None
    channel: Slug = "social"
    is_public: Flag = True
    occurred_at: Instant | None = None


#: The complaint form's rule in the document too: one of these, present, not null and not empty.
ONE_CONTACT: dict[str, Any] = {"anyOf": [
    {"required": [name], "properties": {name: {"type": "string", "minLength": 1}}}
    for name in ("customer_id", "email", "phone")
]}


class ComplaintIn(_Journey):
    """The fast complaint form: the text and one way to reach or identify the customer."""

    model_config = ConfigDict(json_schema_extra=ONE_CONTACT)

    text: Text
    customer_id: Short | None = None
    email: Email | None = None
    phone: Annotated[str, Field(min_length=5, max_length=32, pattern=r"^\+?[0-9 ().\-]+$")] | None = None
    external_id: Id | None = Field(
        default=None, description="Your id for this submission; resubmitting it is a duplicate."
    )
    order_id: Short | None = None
    language: Short | None = None
    occurred_at: Instant | None = None

    @model_validator(mode="after")
    def _one_contact(self) -> Self:
        if not (self.customer_id or self.email or self.phone):
            raise ValueError("give one of customer_id, email or phone, so someone can get back to you")
        return self


#: The survey's rule in the document too: at least one answer, present and not null or empty.
ONE_ANSWER: dict[str, Any] = {"anyOf": [
    {"required": ["nps"], "properties": {"nps": {"type": "integer"}}},
    {"required": ["csat"], "properties": {"csat": {"type": "integer"}}},
    {"required": ["expected"], "properties": {"expected": {"type": "integer"}}},
    {"required": ["perceived"], "properties": {"perceived": {"type": "integer"}}},
    {"required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}},
    {"required": ["questions"], "properties": {"questions": {"type": "object", "minProperties": 1}}},
]}
#: And one way to tell it from another answer: its id, its customer or its text (two anonymous answers
#: with the same scores and no id would otherwise be one).
IDENTIFIED: dict[str, Any] = {"anyOf": [
    {"required": ["response_id"], "properties": {"response_id": {"type": "string", "minLength": 1}}},
    {"required": ["customer_id"], "properties": {"customer_id": {"type": "string", "minLength": 1}}},
    {"required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}},
]}


class SurveyIn(_Journey):
    """One answer to a survey: scores (NPS, CSAT, the expected and perceived feeling at its touch point), a
    free text ("why?") and other answers.

    With a text it becomes a feedback item of kind ``survey`` (scored, alerted on, rewarded like a
    review); without one, a ``survey.answered`` event that carries the scores only.
    """

    model_config = ConfigDict(json_schema_extra={"allOf": [ONE_ANSWER, IDENTIFIED]})

    survey_id: Annotated[str, Field(min_length=1, max_length=128, examples=["nps-2026-q4"])]
    response_id: Id | None = Field(
        default=None, description="The answer's id at the source; the same id twice is a duplicate. Without "
        "it, the survey and customer (or, for an anonymous answer, the answer itself) identify it.")
    customer_id: Short | None = None
    nps: NpsScore | None = None
    csat: CsatScore | None = None
    expected: ExpectedFeeling | None = None
    perceived: PerceivedFeeling | None = None
    text: Text | None = None
    questions: SurveyQuestions | None = Field(
        default=None, description="Other answers: question id to answer (text, number or yes/no).")
    language: Short | None = None
    source: Slug = "survey"
    channel: Slug = "web"
    order_id: Short | None = None
    product_id: Short | None = None
    occurred_at: Instant | None = None

    @model_validator(mode="after")
    def _one_answer(self) -> Self:
        scores = (self.nps, self.csat, self.expected, self.perceived)
        if all(score is None for score in scores) and not self.text and not self.questions:
            raise ValueError("an answer needs at least one of nps, csat, expected, perceived, text or questions")
        if not self.response_id and not self.customer_id and not self.text:
            # Two people can give the same scores: without an id of its own, a second anonymous answer
            # would be taken for a resend of the first and lost.
            raise ValueError("an anonymous answer with no text needs response_id (the answer's id at the source)")
        return self


class SuggestionIn(_ItemIn):
    """An idea for the product or the service (routed to the product team, SEN-7)."""

    source: Slug = Field(default="web_form", examples=["web_form"])
    external_id: Id | None = Field(
        default=None, description="Your id for this suggestion; resubmitting it is a duplicate. Without it, "
        "the customer (or author) and the text identify it.")
    channel: Slug = "web"
    is_public: Flag = False


class OrderLineIn(BaseModel):
    """A line of an order (``feedback_shared.events.OrderLine``), with the amount as documented."""

    model_config = ConfigDict(extra="ignore")

    sku: Short
    quantity: Annotated[int, Field(ge=1, le=1_000_000), NUMBER_ONLY] = 1
    price: Amount | None = None


class CommerceIn(_Request):
    order_id: Id
    customer_id: Id
    amount: Amount
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
    items: list[OrderLineIn] | None = None
    occurred_at: Instant | None = None


class PurchaseIn(CommerceIn):
    """A completed purchase."""


class ReturnIn(CommerceIn):
    """A returned order (its loyalty points are reversed)."""


class BatchIn(BaseModel):
    """Up to 1,000 mixed items, each with a ``type``: review, mention, complaint, survey, suggestion,
    purchase or return.

    Items are validated one by one: a bad item is rejected with its errors, the others go ahead.
    """

    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=1000)]


ItemStatus = Literal["accepted", "duplicate", "rejected", "unavailable"]


class ItemResult(BaseModel):
    index: int
    status: ItemStatus
    event_id: uuid.UUID | None = None
    errors: list[dict[str, Any]] | None = None


class BatchResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    unavailable: int
    results: list[ItemResult]


class Accepted(BaseModel):
    status: Literal["accepted", "duplicate"]
    event_id: uuid.UUID
