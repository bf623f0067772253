"""Messages to customers: every kind in every language, names, dates in the customer's zone, consent."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from importlib.resources import files
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

import pytest
from pydantic import ValidationError

from alerts import customer_messages
from alerts.customer_messages import (
    LANGUAGES,
    MESSAGE_KINDS,
    NAME_MAX_CHARS,
    CustomerMessage,
    Recipient,
    format_answer_by,
    message_language,
    render,
)

# 09:00 UTC is 14:00 in Almaty (UTC+5 since 2024) and 04:00 in New York (EST) on this day.
ANSWER_BY = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)

# What each kind needs to render; the reply has no letters, so it cannot skew a script check.
NEEDED: dict[str, dict[str, Any]] = {
    "acknowledgement": {"answer_by": ANSWER_BY}, "delay_notice": {"answer_by": ANSWER_BY},
    "thank_you": {"points": 250}, "purchase_followup": {"order_id": "ORD-7"},
    "resolution_checkin": {"case_ref": "C-42"}, "reply": {"reply_text": "№ 12345 → 15:00"},
}
# The answer-by time of ANSWER_BY in Asia/Almaty, as each language writes it.
ALMATY_ANSWER_BY = {
    "en": "5 December 2026, 14:00 (Asia/Almaty)",
    "ru": "5 декабря 2026, 14:00 (Asia/Almaty)",
    "es": "5 de diciembre de 2026, a las 14:00 (Asia/Almaty)",
    "de": "5. Dezember 2026, 14:00 Uhr (Asia/Almaty)",
    "fr": "5 décembre 2026 à 14 h 00 (Asia/Almaty)",
    "tr": "5 Aralık 2026, 14:00 (Asia/Almaty)",
    "az": "5 dekabr 2026, 14:00 (Asia/Almaty)",
    "kk": "2026 жылғы 5 желтоқсан, 14:00 (Asia/Almaty)",
    "uz": "2026-yil 5-dekabr, 14:00 (Asia/Almaty)",
    "ka": "5 დეკემბერი, 2026, 14:00 (Asia/Almaty)",
    "hy": "5 դեկտեմբերի 2026 թ., 14:00 (Asia/Almaty)",
}
NEUTRAL_GREETING = {
    "en": "Hello,", "ru": "Здравствуйте!", "es": "Hola:", "de": "Guten Tag!", "fr": "Bonjour,",
    "tr": "Merhaba,", "az": "Hörmətli müştəri,", "kk": "Сәлеметсіз бе!", "uz": "Assalomu alaykum!",
    "ka": "გამარჯობათ!", "hy": "Հարգելի հաճախորդ,",
}
SIGN_OFF = {
    "en": "Kind regards,", "ru": "С уважением,", "es": "Atentamente,", "de": "Mit freundlichen Grüßen",
    "fr": "Cordialement,", "tr": "Saygılarımızla,", "az": "Hörmətlə,", "kk": "Құрметпен,",
    "uz": "Hurmat bilan,", "ka": "პატივისცემით,", "hy": "Հարգանքով՝",
}
# The script most of each language's letters are in.
SCRIPT = {
    "en": "LATIN", "es": "LATIN", "de": "LATIN", "fr": "LATIN", "tr": "LATIN", "az": "LATIN", "uz": "LATIN",
    "ru": "CYRILLIC", "kk": "CYRILLIC", "ka": "GEORGIAN", "hy": "ARMENIAN",
}
# The polite "you" must appear, the familiar one never.
POLITE_YOU = {
    "ru": r"\b(Вы|Вас|Вам|Ваш\w*)\b", "de": r"\b(Sie|Ihr\w*)\b", "fr": r"\b(vous|votre|vos)\b",
    "es": r"\b(usted|su|sus|le)\b", "tr": r"\w+(nız|niz|nuz|nüz)\b", "az": r"\b[Ss]iz\w*\b",
    "kk": r"\bСіз\w*\b", "uz": r"\bSiz\w*\b", "ka": r"თქვენ", "hy": r"Ձե[զր]",
}
FAMILIAR_YOU = {
    "ru": r"\b(ты|тебя|тебе|тобой|твой|твоя|твоё|твои)\b", "de": r"\b(du|dich|dir|dein\w*)\b",
    "fr": r"\b(tu|toi|ton|ta|tes)\b", "es": r"\b(tú|tu|tus|te|ti|contigo)\b",
    "tr": r"\b(sen|seni|sana|senin|sende)\b", "az": r"\b(sən|səni|sənə|sənin)\b",
    "kk": r"\b(сен|сені|саған|сенің|сенде)\b", "uz": r"\b(sen|seni|senga|sening)\b",
    "ka": r"\b(შენ|შენი|შენთვის)\b", "hy": r"\b(դու|քեզ|քո)\b",
}
# What the project's rules forbid, in every language we write: telling people to calm down, and blame.
FORBIDDEN = [
    "calm down", "your fault", "you should have", "успокойтесь", "вы виноваты", "по вашей вине",
    "cálmese", "tranquilícese", "su culpa", "beruhigen sie", "ihre schuld", "calmez-vous", "votre faute",
    "sakin olun", "sizin hatanız", "sakit olun", "sizin günahınız", "сабыр етіңіз", "сіздің кінәңіз",
    "tinchlaning", "sizning aybingiz", "დამშვიდდით", "თქვენი ბრალია", "հանգստացեք", "ձեր մեղքն",
]


def recipient(language: str | None = "en", **overrides: Any) -> Recipient:
    fields: dict[str, Any] = {"customer_id": "c-1", "language": language, "time_zone": "Asia/Almaty"}
    fields.update(overrides)
    return Recipient(**fields)


def render_any(kind: str, who: Recipient, **overrides: Any) -> CustomerMessage:
    """Render ``kind`` with what it needs, plus ``overrides``."""
    return render(kind, who, **{**NEEDED[kind], **overrides})


def script_share(text: str, script: str) -> float:
    letters = [char for char in text if char.isalpha()]
    return sum(unicodedata.name(char, "").startswith(script) for char in letters) / len(letters)


def english_sentences(kind: str) -> list[str]:
    english = render_any(kind, recipient("en")).body
    return [s for s in re.split(r"(?<=[.!?:])\s+", english) if len(s) > 20 and "12345" not in s]


# --- every kind in every language -----------------------------------------------------------------

@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", MESSAGE_KINDS)
def test_every_kind_renders_in_every_language(kind: str, language: str) -> None:
    message = render_any(kind, recipient(language))

    assert message.kind == kind and message.language == language and not message.marketing
    assert message.subject and "\n" not in message.subject
    assert message.body.startswith(NEUTRAL_GREETING[language] + "\n\n")
    assert SIGN_OFF[language] in message.body
    assert script_share(message.body, SCRIPT[language]) > 0.9
    assert script_share(message.subject, SCRIPT[language]) > 0.9
    if language != "en":  # written in the language, not an English fallback
        assert message.subject != render_any(kind, recipient("en")).subject
        assert not [s for s in english_sentences(kind) if s in message.body]
    # Every template field was filled; no brace of ours leaks into what the customer reads.
    assert "{" not in message.body and "}" not in message.body
    assert not any(unicodedata.category(char) == "Cc" for char in message.body.replace("\n", ""))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["acknowledgement", "delay_notice"])
def test_promises_carry_the_local_date_and_time(kind: str, language: str) -> None:
    assert ALMATY_ANSWER_BY[language] in render_any(kind, recipient(language)).body


@pytest.mark.parametrize("language", LANGUAGES)
def test_thank_you_names_the_points(language: str) -> None:
    body = render("thank_you", recipient(language), points=250).body
    assert re.search(r"(?<!\d)250(?!\d)", body)


@pytest.mark.parametrize("language", LANGUAGES)
def test_reply_wraps_the_csm_text_with_greeting_and_signature(language: str) -> None:
    body = render("reply", recipient(language, preferred_name="Dana"), reply_text="Line one.\r\nLine two.").body
    greeting, text = body.split("\n\n")[:2]
    assert "Dana" in greeting
    assert text == "Line one.\nLine two."
    assert SIGN_OFF[language] in body


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang in POLITE_YOU])
def test_polite_register_only(language: str) -> None:
    bodies = " ".join(render_any(kind, recipient(language), include_offer=True).body
                      + render_any(kind, recipient(language)).subject for kind in MESSAGE_KINDS)
    assert re.search(POLITE_YOU[language], bodies)
    assert not re.search(FAMILIAR_YOU[language], bodies, re.IGNORECASE)


@pytest.mark.parametrize("language", LANGUAGES)
def test_never_calm_down_never_blame(language: str) -> None:
    for kind in MESSAGE_KINDS:
        message = render_any(kind, recipient(language, marketing_consent=True), include_offer=True)
        text = (message.subject + "\n" + message.body).lower()
        assert not [phrase for phrase in FORBIDDEN if phrase in text]


def test_the_acknowledgement_thanks_apologises_and_offers_two_ways_to_reach_us() -> None:
    body = render("acknowledgement", recipient("en"), answer_by=ANSWER_BY).body
    assert "Thank you" in body and "sorry" in body
    assert "reply to this message" in body and "call us" in body and "chat" in body


def test_the_checkin_says_a_reply_reopens_the_case_and_the_followup_offers_a_review() -> None:
    assert "your case will be reopened" in render("resolution_checkin", recipient("en")).body
    assert "Ваше обращение" in render("resolution_checkin", recipient("ru")).body
    followup = render("purchase_followup", recipient("en"), order_id="ORD-7").body
    assert "reply to this message" in followup and "leave a review" in followup
    assert "Order number: ORD-7" in followup
    assert "Order number" not in render("purchase_followup", recipient("en")).body


def test_a_case_reference_goes_in_the_subject_and_the_body() -> None:
    message = render("acknowledgement", recipient("de"), answer_by=ANSWER_BY, case_ref="C-42")
    assert message.subject == "Wir haben Ihre Anfrage erhalten [C-42]"
    assert "Vorgangsnummer: C-42" in message.body
    assert "[" not in render("acknowledgement", recipient("de"), answer_by=ANSWER_BY).subject


# --- points in the language's own number and plural forms ------------------------------------------

@pytest.mark.parametrize(("language", "points", "expected"), [
    ("en", 1, "1 point to"), ("en", 1500, "1,500 points"),
    ("ru", 1, "1 балл."), ("ru", 3, "3 балла."), ("ru", 11, "11 баллов."), ("ru", 21, "21 балл."),
    ("ru", 1500, "1\u00a0500 баллов."), ("de", 1, "1 Punkt "), ("de", 2500, "2.500 Punkte "),
    ("fr", 1, "1 point "), ("fr", 2, "2 points "), ("tr", 1, "1 puan "), ("tr", 7, "7 puan "),
])
def test_points_use_the_languages_plural_and_grouping(language: str, points: int, expected: str) -> None:
    assert expected in render("thank_you", recipient(language), points=points).body


# --- names -----------------------------------------------------------------------------------------

def test_the_full_preferred_name_is_used_unless_first_name_only_is_permitted() -> None:
    formal = render("thank_you", recipient("en", preferred_name="Anna Maria Petrova"), points=5)
    assert formal.body.startswith("Hello Anna Maria Petrova,\n")
    familiar = render("thank_you", recipient("en", preferred_name="Anna Maria Petrova", first_name_ok=True),
                      points=5)
    assert familiar.body.startswith("Hello Anna,\n")
    assert "Petrova" not in familiar.body and "Maria" not in familiar.body


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_name_is_used_in_every_language(language: str) -> None:
    body = render("thank_you", recipient(language, preferred_name="Әлия Нұрланқызы", first_name_ok=True),
                  points=5).body
    assert "Әлия" in body.split("\n\n")[0] and "Нұрланқызы" not in body


@pytest.mark.parametrize("name", [None, "", "   ", "\x00\x07\u202e", "\n\t"])
def test_no_usable_name_gives_a_neutral_greeting(name: str | None) -> None:
    assert render("thank_you", recipient("ru", preferred_name=name), points=5).body.startswith("Здравствуйте!\n")
    assert render("thank_you", recipient("en", preferred_name=name, first_name_ok=True),
                  points=5).body.startswith("Hello,\n")


def test_control_and_reordering_characters_are_stripped_from_names() -> None:
    who = recipient("en", preferred_name="  Anna\x00\x1b[31m \u202eMaria\r\nPetrova\u2066  ")
    body = render("thank_you", who, points=5).body
    assert body.startswith("Hello Anna[31m Maria Petrova,\n")
    assert not any(unicodedata.category(char) == "Cc" or char in "\u202e\u2066" for char in body.replace("\n", ""))


def test_long_names_are_capped() -> None:
    body = render("thank_you", recipient("en", preferred_name="x" * 500), points=5).body
    greeting = body.split("\n", 1)[0]
    assert greeting == "Hello " + "x" * NAME_MAX_CHARS + ","


@pytest.mark.parametrize("language", LANGUAGES)
def test_values_that_look_like_templates_come_out_literally(language: str) -> None:
    trap = "{points} $x ${name} {0} {name.__class__} %s {{answer_by}}"
    message = render("acknowledgement", recipient(language, preferred_name=trap), answer_by=ANSWER_BY,
                     case_ref="{answer_by}")
    assert trap in message.body
    assert "[{answer_by}]" in message.subject and "{answer_by}" in message.body
    reply = render("reply", recipient(language, preferred_name="$name"), reply_text="Use {name} and $x, {0}.")
    assert "Use {name} and $x, {0}." in reply.body and "$name" in reply.body
    thanks = render("thank_you", recipient(language, preferred_name="{points_word}"), points=9)
    assert "{points_word}" in thanks.body


# --- language choice -------------------------------------------------------------------------------

@pytest.mark.parametrize(("tag", "expected"), [
    ("ru", "ru"), ("ru-RU", "ru"), ("RU", "ru"), ("kk_KZ", "kk"), (" de ", "de"), ("uz-Latn-UZ", "uz"),
    ("hy-AM", "hy"), ("pt", "en"), ("pt-BR", "en"), (None, "en"), ("", "en"), ("xx-YY", "en"),
])
def test_message_language_uses_the_base_subtag_or_english(tag: str | None, expected: str) -> None:
    assert message_language(recipient(tag)) == expected


@pytest.mark.parametrize("tag", ["pt", "pt-BR", None])
def test_languages_we_do_not_write_get_english(tag: str | None) -> None:
    message = render("acknowledgement", recipient(tag), answer_by=ANSWER_BY)
    assert message.language == "en"
    assert message.subject == "We have received your request"
    assert "5 December 2026, 14:00 (Asia/Almaty)" in message.body


# --- time zones ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("language", "zone", "answer_by", "expected"), [
    ("en", "Asia/Almaty", ANSWER_BY, "5 December 2026, 14:00 (Asia/Almaty)"),
    ("en", "America/New_York", ANSWER_BY, "5 December 2026, 04:00 (America/New_York)"),
    ("de", "America/New_York", ANSWER_BY, "5. Dezember 2026, 04:00 Uhr (America/New_York)"),
    # Summer time in New York: UTC-4.
    ("es", "America/New_York", datetime(2026, 7, 1, 12, 30, tzinfo=UTC),
     "1 de julio de 2026, a las 08:30 (America/New_York)"),
    # Across midnight and the new year: the local date, month and year are the customer's.
    ("ru", "Asia/Almaty", datetime(2026, 12, 31, 22, 30, tzinfo=UTC), "1 января 2027, 03:30 (Asia/Almaty)"),
    ("ru", "America/New_York", datetime(2027, 1, 1, 3, 0, tzinfo=UTC), "31 декабря 2026, 22:00 (America/New_York)"),
    # An aware time in another offset is converted, not relabelled.
    ("en", "Asia/Almaty", datetime(2026, 12, 5, 12, 0, tzinfo=timezone(timedelta(hours=3))),
     "5 December 2026, 14:00 (Asia/Almaty)"),
    ("fr", None, ANSWER_BY, "5 décembre 2026 à 09 h 00 (UTC)"),
    ("pt", "Asia/Almaty", ANSWER_BY, "5 December 2026, 14:00 (Asia/Almaty)"),
])
def test_format_answer_by_shows_local_time_and_localized_month(
        language: str, zone: str | None, answer_by: datetime, expected: str) -> None:
    assert format_answer_by(answer_by, language, zone) == expected


@pytest.mark.parametrize("zone", [None, "", "  ", "Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime",
                                  "Asia/Almaty\x00", "x" * 300])
def test_unknown_or_malformed_zones_fall_back_to_utc_and_say_so(zone: str | None) -> None:
    body = render("delay_notice", recipient("en", time_zone=zone), answer_by=ANSWER_BY).body
    assert "5 December 2026, 09:00 (UTC)" in body


def test_without_a_tz_database_every_zone_falls_back_to_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_tzdata(key: str) -> None:
        raise ZoneInfoNotFoundError(f"No time zone found with key {key}")

    monkeypatch.setattr(customer_messages, "ZoneInfo", no_tzdata)
    body = render("acknowledgement", recipient("ru", time_zone="Asia/Almaty"), answer_by=ANSWER_BY).body
    assert "5 декабря 2026, 09:00 (UTC)" in body
    assert "Asia/Almaty" not in body


def test_a_naive_answer_by_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render("acknowledgement", recipient("en"), answer_by=datetime(2026, 12, 5, 9, 0))


# --- required values -------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "values"), [
    ("acknowledgement", {}), ("delay_notice", {"points": 5}),
    ("thank_you", {}), ("thank_you", {"points": 0}), ("thank_you", {"points": -5}), ("thank_you", {"points": True}),
    ("reply", {}), ("reply", {"reply_text": "  \n\t "}), ("reply", {"reply_text": "\x00\x07"}),
    ("apology", {"answer_by": ANSWER_BY}),
])
def test_missing_required_values_raise(kind: str, values: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        render(kind, recipient("en"), **values)


# --- marketing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", MESSAGE_KINDS)
def test_an_offer_needs_both_the_request_and_consent(kind: str, language: str) -> None:
    consented = recipient(language, marketing_consent=True)
    plain = render_any(kind, consented)
    offered = render_any(kind, consented, include_offer=True)
    refused = render_any(kind, recipient(language, marketing_consent=False), include_offer=True)

    assert not plain.marketing and not refused.marketing
    assert offered.marketing
    assert len(offered.body) > len(plain.body) and offered.body.startswith(plain.body.rsplit("\n\n", 1)[0])
    assert refused.body == render_any(kind, recipient(language, marketing_consent=False)).body
    assert refused.body == plain.body


def test_the_offer_is_a_promotion_with_a_way_out() -> None:
    who = recipient("en", marketing_consent=True)
    body = render("thank_you", who, points=5, include_offer=True).body
    assert "personal offers" in body and "withdraw your consent" in body
    assert "personal offers" not in render("thank_you", who, points=5).body


def test_messages_are_frozen() -> None:
    message = render("thank_you", recipient("en"), points=5)
    with pytest.raises(ValidationError):
        message.marketing = True  # type: ignore[misc]


# --- the templates themselves ----------------------------------------------------------------------

def test_there_is_one_template_file_per_language() -> None:
    names = {entry.name for entry in (files("alerts") / "templates").iterdir() if entry.name.endswith(".toml")}
    assert names == {f"{language}.toml" for language in LANGUAGES}


def english_pack() -> dict[str, Any]:
    text = (files("alerts") / "templates" / "en.toml").read_text(encoding="utf-8")
    return {"language": "en", **tomllib.loads(text)}


@pytest.mark.parametrize(("path", "template", "error"), [
    (("messages", "acknowledgement", "body"), "We will answer soon.", "lacks the fields"),
    (("messages", "thank_you", "body"), "{points} {points_word} {name}", "unknown fields"),
    (("messages", "reply", "subject"), "Re: {reply_text.__class__}", "plain name"),
    (("messages", "delay_notice", "body"), "By {answer_by!r}", "plain name"),
    (("messages", "delay_notice", "body"), "By {answer_by:>99}", "plain name"),
    (("greeting_named",), "Hello,", "lacks the fields"),
    (("date_time",), "{day} {month} {year}", "lacks the fields"),
])
def test_a_broken_template_is_refused_when_loaded(path: tuple[str, ...], template: str, error: str) -> None:
    data = english_pack()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = template
    with pytest.raises(ValidationError, match=re.escape(error)):
        customer_messages._LanguagePack.model_validate(data)


def test_a_pack_missing_a_kind_month_or_plural_form_is_refused() -> None:
    data = english_pack()
    del data["messages"]["reply"]
    with pytest.raises(ValidationError, match="messages must be exactly"):
        customer_messages._LanguagePack.model_validate(data)
    data = english_pack()
    data["months"] = data["months"][:11]
    with pytest.raises(ValidationError, match="twelve months"):
        customer_messages._LanguagePack.model_validate(data)
    data = {**english_pack(), "points_word": {"other": "points"}}
    with pytest.raises(ValidationError, match="plural forms"):
        customer_messages._LanguagePack.model_validate(data)
    assert customer_messages._LanguagePack.model_validate(english_pack()).language == "en"
