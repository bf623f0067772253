"""Source adapters: each source's native shape to the request models ingest validates.

The generic JSON adapter understands the field names most review and social platforms use; the file
importer and the feed poller map their rows and entries through it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

#: Accepted spellings of each field, first match wins.
ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("external_id", "id", "review_id", "guid", "message_id", "uuid"),
    "text": ("text", "content", "body", "comment", "message", "review", "summary"),
    "rating": ("rating", "stars", "score"),
    "author": ("author", "user", "username", "handle", "reviewer", "name"),
    "url": ("url", "link", "permalink"),
    "occurred_at": ("occurred_at", "created_at", "published_at", "date", "timestamp", "time"),
    "customer_id": ("customer_id", "customer", "account_id"),
    "language": ("language", "lang", "locale"),
    "product_id": ("product_id", "product", "sku"),
    "order_id": ("order_id", "order"),
    "thread_id": ("thread_id", "conversation_id", "in_reply_to"),
    "title": ("title", "subject", "headline"),
}
KINDS = ("review", "mention", "complaint", "survey", "suggestion")
#: Taken as they are, when present: where in the journey (any kind), and a survey's answers.
JOURNEY_FIELDS = ("touch_point", "journey_stage")
SURVEY_FIELDS = ("survey_id", "response_id", "nps", "csat", "expected", "perceived", "questions")
SURVEY_SCORES = ("nps", "csat", "expected", "perceived")
FLAG_TEXTS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
#: What a survey answer has of the generic fields (it has no author, rating, url or thread): a source's
#: "score" is not taken as an NPS or a CSAT, which it could be either of.
SURVEY_GENERIC_FIELDS = ("text", "occurred_at", "customer_id", "language", "product_id", "order_id")
_DATETIME = TypeAdapter(datetime)


def _instant(value: Any) -> Any:
    """A source's timestamp in any form pydantic reads (seconds or milliseconds since 1970, "2026-11-01
    09:30:00+01:00") as the ISO 8601 text the request models take (they refuse numbers); else as it
    was, for validation to refuse."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return value
    try:
        parsed = _DATETIME.validate_python(value)
    except (ValidationError, ValueError, OverflowError):
        return value
    return parsed.isoformat() if parsed.tzinfo is not None else value


def _first(item: Mapping[str, Any], field: str) -> Any:
    for name in ALIASES[field]:
        value = item.get(name)
        if value not in (None, ""):
            return value
    return None


def _number_from_text(value: Any) -> Any:
    """A CSV cell, a feed or a source's JSON may write a score as text ("5"); the request models take a
    JSON number only. Anything else is left for validation to refuse with the field named."""
    text = value.strip() if isinstance(value, str) else None
    if text is not None and text.isascii() and text.isdigit() and len(text) < 10:
        return int(text)
    return value


def _flag_from_text(value: Any) -> Any:
    """The same for a yes/no field written as text ("true", "0")."""
    if isinstance(value, str) and value.strip().lower() in FLAG_TEXTS:
        return FLAG_TEXTS[value.strip().lower()]
    return value


def generic_item(item: Mapping[str, Any], *, default_kind: str = "review") -> dict[str, Any]:
    """Map one item of any common JSON shape to the fields of a review or mention request.

    Returns ``{"type": kind, ...fields}`` for the batch validator; missing required fields are left
    out, so validation names them.
    """
    kind = str(item.get("kind") or item.get("type") or default_kind).lower()
    fields: dict[str, Any] = {"type": kind if kind in KINDS else kind}
    for field in ("external_id", "text", "rating", "author", "url", "occurred_at", "customer_id", "language",
                  "product_id", "order_id", "thread_id"):
        value = _first(item, field)
        if value is not None:
            fields[field] = value
    title = _first(item, "title")
    if isinstance(title, str) and isinstance(fields.get("text"), str) and title not in fields["text"]:
        fields["text"] = f"{title}\n{fields['text']}"
    elif title and "text" not in fields:
        fields["text"] = title
    if isinstance(fields.get("author"), Mapping):
        fields["author"] = fields["author"].get("name") or fields["author"].get("handle")
    for field in ("external_id", "author", "customer_id"):
        # A numeric id is taken as its digits; anything else (a list, an object, true, 1.5) is left for
        # validation to refuse rather than published as its Python repr.
        if isinstance(fields.get(field), int) and not isinstance(fields[field], bool):
            fields[field] = str(fields[field])
    if "occurred_at" in fields:
        fields["occurred_at"] = _instant(fields["occurred_at"])
    if "rating" in fields:
        fields["rating"] = _number_from_text(fields["rating"])
    if "is_public" in item:
        fields["is_public"] = _flag_from_text(item["is_public"])
    for field in JOURNEY_FIELDS:
        if item.get(field) not in (None, ""):
            fields[field] = item[field]
    if kind == "survey":
        return _survey_item(item, fields)
    if kind == "suggestion":
        fields.pop("rating", None)  # stars on an idea say nothing the suggestion form takes
    return fields


def _survey_item(item: Mapping[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """A survey answer's fields: its own (survey_id, nps, csat, expected, perceived, questions), and its id at the source as
    ``response_id``."""
    survey: dict[str, Any] = {"type": "survey"}
    survey.update({k: v for k, v in fields.items() if k in SURVEY_GENERIC_FIELDS or k in JOURNEY_FIELDS})
    if "external_id" in fields:
        survey["response_id"] = fields["external_id"]
    for field in SURVEY_FIELDS:
        if item.get(field) not in (None, ""):
            survey[field] = _number_from_text(item[field]) if field in SURVEY_SCORES else item[field]
    if isinstance(survey.get("response_id"), int) and not isinstance(survey["response_id"], bool):
        survey["response_id"] = str(survey["response_id"])
    return survey
