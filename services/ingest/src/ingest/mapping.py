"""Requests to events: what each kind of input becomes on the topics, apart from HTTP.

The routes, the feed poller and the webhook receiver all go through here, so a review is the same
event whichever way it came in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ValidationError

from feedback_shared.adapters import generic_item
from feedback_shared.events import (
    FeedbackReceived,
    OrderReturned,
    PurchaseRecorded,
    SurveyAnswered,
    SurveyScores,
    utcnow,
)
from feedback_shared.pii import pseudonym
from feedback_shared.topics import COMMERCE_EVENTS, FEEDBACK_RECEIVED, SURVEY_ANSWERS
from ingest.schemas import (
    CommerceIn,
    ComplaintIn,
    MentionIn,
    PurchaseIn,
    ReturnIn,
    ReviewIn,
    SuggestionIn,
    SurveyIn,
)
from ingest.service import Submission, normalise_text

ITEM_MODELS: dict[str, type[BaseModel]] = {
    "review": ReviewIn, "mention": MentionIn, "complaint": ComplaintIn, "survey": SurveyIn,
    "suggestion": SuggestionIn, "purchase": PurchaseIn, "return": ReturnIn,
}
SOCIAL_SOURCES = frozenset({"x", "twitter", "instagram", "facebook", "tiktok", "youtube", "reddit", "mastodon"})
#: Items one webhook call may carry.
MAX_WEBHOOK_ITEMS = 1000


def _feedback_submission(fields: dict[str, Any]) -> Submission:
    text, original = normalise_text(fields.pop("text"))
    occurred_at = fields.pop("occurred_at", None) or utcnow()
    event = FeedbackReceived(text=text, text_original=original, occurred_at=occurred_at, **fields)
    return Submission(FEEDBACK_RECEIVED, event, event.source, event.external_id, event.kind)


def _complaint_fields(body: ComplaintIn, pseudonym_key: bytes) -> dict[str, Any]:
    """The complaint form's contact detail is never published: a pseudonymous id stands for it, a
    keyed HMAC (knowing the address is not enough to find the customer's data)."""
    contact = body.customer_id or str(body.email or body.phone)
    customer_id = body.customer_id or pseudonym(pseudonym_key, contact.lower(), prefix="anon-", length=20)
    external_id = body.external_id or hashlib.sha256(f"{contact}\x1f{body.text}".encode()).hexdigest()
    fields = body.model_dump(exclude_none=True, exclude={"email", "phone", "customer_id", "external_id"})
    return {"kind": "complaint", "source": "web_form", "channel": "web_form", "is_public": False,
            "customer_id": customer_id, "external_id": external_id, **fields}


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass")).hexdigest()


def _masked_questions(questions: dict[str, Any]) -> dict[str, Any]:
    """Other answers are free text too: card numbers masked and NFC, like the main text."""
    return {key: normalise_text(value)[0] if isinstance(value, str) else value for key, value in questions.items()}


def survey_external_id(body: SurveyIn, text: str | None, questions: dict[str, Any]) -> str:
    """The answer's id when the source gave none: the same answer sent again gets the same id, so it is
    a duplicate. One answer per survey and customer; an anonymous answer is identified by what it says
    (normalised: NFC, masked, runs of white space as one), so only an identical resend matches it."""
    if body.response_id:
        return body.response_id
    if body.customer_id:
        return "survey-" + _digest(body.survey_id, "customer", body.customer_id)
    answer = {"nps": body.nps, "csat": body.csat, "text": " ".join(text.split()) if text else None,
              "questions": questions, "touch_point": body.touch_point, "journey_stage": body.journey_stage}
    # Added later (SUR-3), so only when given: an answer without them keeps the id it always had.
    answer.update({k: v for k, v in (("expected", body.expected), ("perceived", body.perceived)) if v is not None})
    return "survey-" + _digest(body.survey_id, "anonymous", json.dumps(answer, sort_keys=True, ensure_ascii=False))


def _survey_submission(body: SurveyIn) -> Submission:
    """With a text: a feedback item of kind ``survey`` (scored like a review), carrying its scores.
    Without: ``survey.answered``, the scores alone. Either way one event, so each answer counts once."""
    text, original = normalise_text(body.text) if body.text else (None, None)
    questions = _masked_questions(body.questions or {})
    scores = SurveyScores(survey_id=body.survey_id, nps=body.nps, csat=body.csat, expected=body.expected,
                          perceived=body.perceived, questions=questions)
    common: dict[str, Any] = {
        "source": body.source, "channel": body.channel, "external_id": survey_external_id(body, text, questions),
        "customer_id": body.customer_id, "language": body.language, "touch_point": body.touch_point,
        "journey_stage": body.journey_stage, "occurred_at": body.occurred_at or utcnow(), "survey": scores,
    }
    if text is None:
        answered = SurveyAnswered(**common)
        return Submission(SURVEY_ANSWERS, answered, answered.source, answered.external_id, "survey")
    event = FeedbackReceived(kind="survey", text=text, text_original=original, is_public=False,
                             order_id=body.order_id, product_id=body.product_id, **common)
    return Submission(FEEDBACK_RECEIVED, event, event.source, event.external_id, event.kind)


def _suggestion_fields(body: SuggestionIn) -> dict[str, Any]:
    """Without an id of its own, a suggestion is its author and its text: the same idea sent twice by
    the same person is one item."""
    who = body.customer_id or body.author or ""
    external_id = body.external_id or "suggestion-" + _digest(who, " ".join(normalise_text(body.text)[0].split()))
    return {"kind": "suggestion", **body.model_dump(exclude_none=True, exclude={"external_id"}),
            "external_id": external_id}


def _commerce_submission(body: CommerceIn, returned: bool) -> Submission:
    fields = body.model_dump(exclude_none=True)
    fields["occurred_at"] = fields.get("occurred_at") or utcnow()
    event = OrderReturned(**fields) if returned else PurchaseRecorded(**fields)
    source = "commerce.return" if returned else "commerce.purchase"
    return Submission(COMMERCE_EVENTS, event, source, event.order_id, event.event_type)


def submission_for(item_type: str, body: BaseModel, *, pseudonym_key: bytes | None = None) -> Submission:
    """``pseudonym_key``: for complaints, whose contact detail becomes a keyed pseudonym."""
    if isinstance(body, ComplaintIn):
        if not pseudonym_key:
            raise ValueError("a complaint needs the pseudonym key")
        return _feedback_submission(_complaint_fields(body, pseudonym_key))
    if isinstance(body, CommerceIn):
        return _commerce_submission(body, returned=isinstance(body, ReturnIn))
    if isinstance(body, SurveyIn):
        return _survey_submission(body)
    if isinstance(body, SuggestionIn):
        return _feedback_submission(_suggestion_fields(body))
    return _feedback_submission({"kind": item_type, **body.model_dump(exclude_none=True)})


def parse_item(raw: dict[str, Any], *, pseudonym_key: bytes) -> Submission | list[dict[str, Any]]:
    """One item of a batch (``{"type": ..., ...}``): its submission, or the validation errors naming the
    fields (without the input values: they may hold personal data)."""
    item = dict(raw)
    item_type = str(item.pop("type", ""))
    model = ITEM_MODELS.get(item_type)
    if model is None:
        return [{"loc": ["type"], "msg": f"type must be one of {', '.join(ITEM_MODELS)}", "type": "enum"}]
    try:
        return submission_for(item_type, model.model_validate(item), pseudonym_key=pseudonym_key)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
        parsed: list[dict[str, Any]] = json.loads(json.dumps(errors, default=str))
        return parsed


def webhook_items(source: str, payload: Any) -> list[dict[str, Any]] | None:
    """A webhook's body (one item, a list, or ``{"items": [...]}``, in any common JSON shape) as batch
    items of ``source``; None when it is none of those or holds more than ``MAX_WEBHOOK_ITEMS``."""
    raw_items = payload.get("items") if isinstance(payload, dict) and "items" in payload else payload
    raw_items = raw_items if isinstance(raw_items, list) else [raw_items]
    if not raw_items or len(raw_items) > MAX_WEBHOOK_ITEMS or not all(isinstance(i, dict) for i in raw_items):
        return None
    default_kind = "mention" if source in SOCIAL_SOURCES else "review"
    return [{**generic_item(i, default_kind=default_kind), "source": source} for i in raw_items]
