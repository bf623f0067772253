"""Messages to customers, in their language: acknowledgements, delay notices, thanks, follow-ups, replies.

Pure: a recipient and a few values in, a plain-text subject and body out. No I/O besides reading the
packaged templates (``alerts/templates/<language>.toml``, one file per language, so a translator edits one
file and nothing else).

The project's rules for talking to customers are built into the texts, not left to each caller: thank
the customer, answer with a concrete date *and* time in their own time zone, offer at least two ways to
reach us, never tell them to calm down, never blame them. Marketing is opt-in twice over: the caller asks
for it (``include_offer``) and the account must have consented, otherwise the offer is left out.

Only our own templates are ever parsed as format strings. Everything that comes from a customer or a CSM
(names, references, the reply text) is passed in as a *value*, so a name such as ``{points}`` or
``$x`` comes out literally and can never reach a field, an attribute or a format spec.
"""

from __future__ import annotations

import logging
import string
import tomllib
import unicodedata
from datetime import UTC, datetime, tzinfo
from functools import cache
from importlib.resources import files
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

logger = logging.getLogger(__name__)

MESSAGE_KINDS = ("acknowledgement", "delay_notice", "thank_you", "purchase_followup", "resolution_checkin", "reply")
LANGUAGES = ("en", "ru", "es", "de", "fr", "tr", "az", "kk", "uz", "ka", "hy")
FALLBACK_LANGUAGE = "en"
#: Longest name we put in a greeting; longer ones are cut (a name field is not a place for an essay).
NAME_MAX_CHARS = 80
#: Longest case or order reference we quote.
REFERENCE_MAX_CHARS = 64

# Which fields each message's subject and body may use; the body must use the required ones, so a
# translation cannot silently drop the date, the points or the CSM's reply.
_KIND_FIELDS: dict[str, frozenset[str]] = {
    "acknowledgement": frozenset({"answer_by"}),
    "delay_notice": frozenset({"answer_by"}),
    "thank_you": frozenset({"points", "points_word"}),
    "purchase_followup": frozenset(),
    "resolution_checkin": frozenset(),
    "reply": frozenset({"reply_text"}),
}
_PACK_FIELDS: dict[str, frozenset[str]] = {
    "greeting_named": frozenset({"name"}),
    "greeting_neutral": frozenset(),
    "signature": frozenset(),
    "offer": frozenset(),
    "case_ref_line": frozenset({"case_ref"}),
    "order_line": frozenset({"order_id"}),
    "date_time": frozenset({"day", "month", "year", "hour", "minute", "zone"}),
}
# CLDR plural categories for cardinal numbers >= 1, as far as these languages need them; the others use
# one form after a numeral ("250 puan", "250 ქულა").
_PLURAL_CATEGORIES: dict[str, tuple[str, ...]] = {
    "en": ("one", "other"), "de": ("one", "other"), "es": ("one", "other"), "fr": ("one", "other"),
    "ru": ("one", "few", "many"),
}
# Characters that reorder or hide text (bidi overrides, isolates, marks): a name must not be able to make
# the rest of the message render backwards.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class Recipient(BaseModel):
    """What the account says about the customer we are writing to."""

    customer_id: str
    preferred_name: str | None = None
    #: May we address them by their first name only? Without it we never guess which word that is.
    first_name_ok: bool = False
    #: BCP-47-ish ("ru", "pt-BR", "kk_KZ"); only the base subtag is used.
    language: str | None = None
    #: IANA ("Asia/Almaty"); unknown or unloadable zones fall back to UTC, and the message says "UTC".
    time_zone: str | None = None
    marketing_consent: bool = False


class CustomerMessage(BaseModel):
    """One rendered message, plain text, ready for whichever channel sends it."""

    model_config = ConfigDict(frozen=True)

    kind: str
    language: str
    subject: str
    body: str
    #: True only when a promotion is in the body, which needs the customer's consent.
    marketing: bool


def _template_fields(template: str) -> set[str]:
    """The named fields of a template, refusing anything beyond a plain ``{name}``.

    Attribute access, indexing, conversions and format specs are refused, so a careless translation
    cannot reach into the values it is given.
    """
    fields: set[str] = set()
    for _literal, field, format_spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if not field.isidentifier() or format_spec or conversion:
            raise ValueError(f"template field {{{field}}} must be a plain name: {template!r}")
        fields.add(field)
    return fields


def _check_template(where: str, template: str, allowed: frozenset[str], required: frozenset[str]) -> None:
    used = _template_fields(template)
    if unknown := used - allowed:
        raise ValueError(f"{where} uses unknown fields {sorted(unknown)}")
    if missing := required - used:
        raise ValueError(f"{where} lacks the fields {sorted(missing)}")


class _MessageTemplate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    subject: str = Field(min_length=1)
    body: str = Field(min_length=1)


class _LanguagePack(BaseModel):
    """One language's templates (``templates/<language>.toml``), checked whole when loaded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: str
    greeting_named: str
    greeting_neutral: str
    signature: str
    offer: str
    case_ref_line: str
    order_line: str
    date_time: str
    months: tuple[str, ...]
    group_separator: str
    points_word: dict[str, str]
    messages: dict[str, _MessageTemplate]

    @field_validator("months")
    @classmethod
    def _twelve_months(cls, months: tuple[str, ...]) -> tuple[str, ...]:
        if len(months) != 12 or not all(months):
            raise ValueError("months must name all twelve months")
        return months

    @model_validator(mode="after")
    def _complete(self) -> _LanguagePack:
        if set(self.messages) != set(MESSAGE_KINDS):
            raise ValueError(f"{self.language}: messages must be exactly {MESSAGE_KINDS}, got {sorted(self.messages)}")
        for kind, template in self.messages.items():
            fields = _KIND_FIELDS[kind]
            _check_template(f"{self.language}.{kind}.subject", template.subject, fields, frozenset())
            _check_template(f"{self.language}.{kind}.body", template.body, fields, fields)
        for name, fields in _PACK_FIELDS.items():
            _check_template(f"{self.language}.{name}", getattr(self, name), fields, fields)
        categories = _PLURAL_CATEGORIES.get(self.language, ("other",))
        if missing := set(categories) - set(self.points_word):
            raise ValueError(f"{self.language}: points_word lacks the plural forms {sorted(missing)}")
        return self

    def points_word_for(self, count: int) -> str:
        return self.points_word[_plural_category(self.language, count)]

    def format_count(self, count: int) -> str:
        return f"{count:,}".replace(",", self.group_separator)


def _plural_category(language: str, count: int) -> str:
    """The CLDR cardinal plural category of a whole number in the languages we write."""
    if language == "ru":
        if count % 10 == 1 and count % 100 != 11:
            return "one"
        if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
            return "few"
        return "many"
    if language == "fr":
        return "one" if count in (0, 1) else "other"
    if language in _PLURAL_CATEGORIES:
        return "one" if count == 1 else "other"
    return "other"


@cache
def _language_pack(language: str) -> _LanguagePack:
    # ``language`` is always one of LANGUAGES here, never a raw account value, so it cannot name a path.
    data = tomllib.loads((files("alerts") / "templates" / f"{language}.toml").read_text(encoding="utf-8"))
    return _LanguagePack.model_validate({"language": language, **data})


def _base_language(tag: str | None) -> str:
    if not tag:
        return ""
    return tag.strip().replace("_", "-").split("-", 1)[0].lower()


def message_language(recipient: Recipient) -> str:
    """The language we write to this recipient in: their base language if we write it, else English."""
    base = _base_language(recipient.language)
    return base if base in LANGUAGES else FALLBACK_LANGUAGE


def _customer_zone(time_zone: str | None) -> tuple[tzinfo, str]:
    """The customer's zone and the name we show for it; UTC (shown as "UTC") when it cannot be loaded."""
    if time_zone and time_zone.strip():
        try:
            zone = ZoneInfo(time_zone.strip())
        except (ZoneInfoNotFoundError, ValueError, OSError):
            # An unknown name, a malformed one, or no tz database at all (tzdata absent): a time in UTC
            # that says so is still a concrete promise, a guessed local time is not.
            logger.warning("customer_time_zone_unavailable", extra={"time_zone": time_zone, "fallback": "UTC"})
        else:
            return zone, zone.key
    return UTC, "UTC"


def format_answer_by(answer_by: datetime, language: str, time_zone: str | None) -> str:
    """The promised date and time as the customer reads it: local time, localized month, the zone named.

    ``answer_by`` must be timezone-aware: a promise to a customer must not depend on the server's zone.
    Minutes are kept, seconds dropped (the shown time is never later than the promise).
    """
    if answer_by.tzinfo is None or answer_by.utcoffset() is None:
        raise ValueError("answer_by must be timezone-aware")
    base = _base_language(language)
    pack = _language_pack(base if base in LANGUAGES else FALLBACK_LANGUAGE)
    zone, zone_name = _customer_zone(time_zone)
    local = answer_by.astimezone(zone)
    return pack.date_time.format(day=local.day, month=pack.months[local.month - 1], year=local.year,
                                 hour=f"{local.hour:02d}", minute=f"{local.minute:02d}", zone=zone_name)


def _one_line(value: str, max_chars: int) -> str:
    """A value from an account made safe for one line of plain text: no controls, single spaces, capped."""
    kept = []
    for char in value:
        if char.isspace():
            kept.append(" ")
        elif unicodedata.category(char) not in ("Cc", "Cs") and char not in _BIDI_CONTROLS:
            kept.append(char)
    return " ".join("".join(kept).split())[:max_chars].rstrip()


def _paragraphs(value: str) -> str:
    """A CSM's reply made safe for plain text: line breaks kept (normalised), other controls dropped."""
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    kept = [char for char in text
            if char in "\n\t" or (unicodedata.category(char) not in ("Cc", "Cs") and char not in _BIDI_CONTROLS)]
    return "".join(kept).strip()


def _greeting(pack: _LanguagePack, recipient: Recipient) -> str:
    name = _one_line(recipient.preferred_name or "", NAME_MAX_CHARS)
    if not name:
        return pack.greeting_neutral
    # Without permission we use the whole preferred name: which word is the first name is not ours to guess.
    return pack.greeting_named.format(name=name.split(" ", 1)[0] if recipient.first_name_ok else name)


def render(kind: str, recipient: Recipient, *, answer_by: datetime | None = None, points: int | None = None,
           order_id: str | None = None, case_ref: str | None = None, reply_text: str | None = None,
           include_offer: bool = False) -> CustomerMessage:
    """Render one message to one customer, in their language.

    Args:
        kind: one of ``MESSAGE_KINDS``.
        recipient: what the account says about the customer.
        answer_by: when we will answer; required for ``acknowledgement`` and ``delay_notice``.
        points: loyalty points awarded (at least 1); required for ``thank_you``.
        order_id: quoted in the body when given (meant for ``purchase_followup``).
        case_ref: quoted in the subject and body when given.
        reply_text: the CSM's reply; required (non-blank) for ``reply``.
        include_offer: add a promotion, which happens only if the customer consented to marketing.

    Raises:
        ValueError: an unknown kind, or a value the kind needs is missing or unusable.
    """
    if kind not in MESSAGE_KINDS:
        raise ValueError(f"unknown message kind {kind!r}; expected one of {MESSAGE_KINDS}")
    language = message_language(recipient)
    pack = _language_pack(language)

    values: dict[str, str] = {}
    if kind in ("acknowledgement", "delay_notice"):
        if answer_by is None:
            raise ValueError(f"{kind} needs answer_by: the customer must be told a date and time")
        values["answer_by"] = format_answer_by(answer_by, language, recipient.time_zone)
    elif kind == "thank_you":
        if points is None or isinstance(points, bool) or points < 1:
            raise ValueError(f"thank_you needs points >= 1, got {points!r}")
        values["points"] = pack.format_count(points)
        values["points_word"] = pack.points_word_for(points)
    elif kind == "reply":
        text = _paragraphs(reply_text or "")
        if not text:
            raise ValueError("reply needs a non-blank reply_text")
        values["reply_text"] = text

    template = pack.messages[kind]
    subject = template.subject.format(**values)
    references = []
    if case := _one_line(case_ref or "", REFERENCE_MAX_CHARS):
        subject = f"{subject} [{case}]"
        references.append(pack.case_ref_line.format(case_ref=case))
    if order := _one_line(order_id or "", REFERENCE_MAX_CHARS):
        references.append(pack.order_line.format(order_id=order))

    marketing = include_offer and recipient.marketing_consent
    parts = [_greeting(pack, recipient), template.body.format(**values)]
    if references:
        parts.append("\n".join(references))
    if marketing:
        parts.append(pack.offer)
    parts.append(pack.signature)
    return CustomerMessage(kind=kind, language=language, subject=subject, body="\n\n".join(parts),
                           marketing=marketing)
