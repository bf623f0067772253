"""The reply check: hand-written drafts in all eleven languages, and each rule's edges."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from pydantic import ValidationError

from alerts.reply_check import (
    FINDING_CODES,
    HINTS,
    LANGUAGES,
    Finding,
    ReplyCheck,
    check_reply,
    detect_reply_language,
)


class Drafts(NamedTuple):
    calm: str          # tells the customer to calm down ...
    calm_phrase: str   # ... with these words
    blame: str         # blames the customer ...
    blame_phrase: str  # ... with (at least) these words
    good: str          # apology, two options, a date and time, acknowledgement before any policy


DRAFTS: dict[str, Drafts] = {
    "en": Drafts(
        "Please calm down, sir. We are looking into your order.", "calm down",
        "This is your fault: you did not read the instructions.", "This is your fault",
        "Thank you for your patience, and we are sorry that the parcel arrived damaged. According to our "
        "policy, we can either send a new one or refund the full price. You will hear from us on Monday "
        "at 10:00."),
    "ru": Drafts(
        "Успокойтесь, пожалуйста, мы уже проверяем ваш заказ.", "Успокойтесь",
        "Это ваша вина: вы не прочитали инструкцию.", "Это ваша вина",
        "Приносим извинения за задержку. Согласно нашим правилам, мы можем вернуть деньги или отправить "
        "замену. Ответим до 5 декабря, 14:00."),
    "es": Drafts(
        "Cálmese, por favor, estamos revisando su pedido.", "Cálmese",
        "Es su culpa, usted no leyó las instrucciones del pedido.", "Es su culpa",
        "Lamentamos mucho el retraso y le pedimos disculpas. Según nuestra política, podemos devolverle el "
        "dinero o enviarle un producto nuevo. Le responderemos el lunes 7 de diciembre a las 10:00."),
    "de": Drafts(
        "Beruhigen Sie sich bitte, wir prüfen Ihre Bestellung.", "Beruhigen Sie sich",
        "Das ist Ihre Schuld, Sie hätten die Anleitung lesen sollen.", "Das ist Ihre Schuld",
        "Es tut uns leid, dass die Lieferung verspätet ist. Gemäß unseren Richtlinien können wir Ihnen das "
        "Geld erstatten oder einen Ersatz schicken. Wir melden uns am Montag, 7. Dezember, um 10:00 Uhr."),
    "fr": Drafts(
        "Calmez-vous, s'il vous plaît, nous vérifions votre commande.", "Calmez-vous",
        "C'est votre faute, vous auriez dû lire les conditions.", "C'est votre faute",
        "Nous sommes désolés pour ce retard. Selon notre politique, nous pouvons vous rembourser ou vous "
        "envoyer un nouveau colis. Nous vous répondrons le lundi 7 décembre à 10h00."),
    "tr": Drafts(
        "Lütfen sakin olun, siparişinizi kontrol ediyoruz.", "sakin olun",
        "Bu tamamen sizin hatanız, talimatları okumalıydınız.", "sizin hatanız",
        "Gecikme için özür dileriz. Politikamız gereği paranızı iade edebiliriz veya yeni bir ürün "
        "gönderebiliriz. Size 7 Aralık Pazartesi saat 10:00'a kadar dönüş yapacağız."),
    "az": Drafts(
        "Xahiş edirik, sakit olun, sifarişinizi yoxlayırıq və tezliklə cavab verəcəyik.", "sakit olun",
        "Bu sizin günahınızdır, təlimatı oxumalı idiniz.", "sizin günahınızdır",
        "Gecikməyə görə üzr istəyirik. Qaydalarımıza görə pulunuzu qaytara bilərik və ya yeni məhsul "
        "göndərə bilərik. Sizə 7 dekabr, bazar ertəsi saat 10:00-da cavab verəcəyik."),
    "kk": Drafts(
        "Сабыр етіңіз, біз тапсырысыңызды тексеріп жатырмыз.", "Сабыр етіңіз",
        "Бұл сіздің кінәңіз, нұсқаулықты оқуыңыз керек еді.", "сіздің кінәңіз",
        "Кешіктіргеніміз үшін кешірім сұраймыз. Ережелерімізге сәйкес ақшаңызды қайтара аламыз немесе жаңа "
        "тауар жібере аламыз. Сізге 7 желтоқсан, дүйсенбі күні сағат 10:00-ге дейін жауап береміз."),
    "uz": Drafts(
        "Iltimos, tinchlaning, buyurtmangizni tekshiryapmiz.", "tinchlaning",
        "Bu sizning aybingiz, yo'riqnomani o'qishingiz kerak edi.", "sizning aybingiz",
        "Kechikish uchun uzr so'raymiz. Qoidalarimizga ko'ra pulingizni qaytarishimiz yoki yangi mahsulot "
        "yuborishimiz mumkin. Sizga 7-dekabr, dushanba kuni soat 10:00 gacha javob beramiz."),
    "ka": Drafts(
        "გთხოვთ, დამშვიდდით, ჩვენ ვამოწმებთ თქვენს შეკვეთას.", "დამშვიდდით",
        "ეს თქვენი ბრალია, ინსტრუქცია უნდა წაგეკითხათ.", "თქვენი ბრალია",
        "ბოდიშს გიხდით დაგვიანებისთვის. ჩვენი წესების თანახმად, შეგვიძლია თანხა დაგიბრუნოთ ან ახალი "
        "პროდუქტი გამოგიგზავნოთ. გიპასუხებთ 7 დეკემბერს, ორშაბათს, 10:00 საათზე."),
    "hy": Drafts(
        "Խնդրում ենք, հանգստացեք, մենք ստուգում ենք ձեր պատվերը։", "հանգստացեք",
        "Դա ձեր մեղքն է, դուք պետք է կարդայիք հրահանգը։", "ձեր մեղքն է",
        "Ներողություն ենք խնդրում ուշացման համար։ Մեր կանոնների համաձայն՝ կարող ենք վերադարձնել գումարը "
        "կամ ուղարկել նոր ապրանք։ Կպատասխանենք դեկտեմբերի 7-ին, երկուշաբթի, ժամը 10:00-ին։"),
}

# A draft with nothing wrong, to which one fault at a time is added below.
GOOD_EN = "We are sorry for the delay. We can refund you or send a replacement; we will answer by Monday at 14:00."


def codes(text: str, language: str | None = None) -> list[str]:
    return [f.code for f in check_reply(text, language).findings]


def phrases(text: str, code: str, language: str | None = None) -> list[str]:
    """The text each finding of ``code`` points at."""
    return [text[f.start:f.end] for f in check_reply(text, language).findings if f.code == code]


def test_every_language_has_hand_written_drafts() -> None:
    assert set(DRAFTS) == set(LANGUAGES)
    assert set(HINTS) == set(FINDING_CODES)


# --------------------------------------------------------------------------------------------------
# Every language: detection, calm down, blame, and a good draft.

@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["calm", "blame", "good"])
def test_detects_the_language_of_each_draft(language: str, kind: str) -> None:
    text = getattr(DRAFTS[language], kind)
    assert detect_reply_language(text) == language
    assert check_reply(text).language == language


@pytest.mark.parametrize("language", LANGUAGES)
def test_calm_down_is_found_in_every_language_with_its_span(language: str) -> None:
    drafts = DRAFTS[language]
    assert phrases(drafts.calm, "calm_down") == [drafts.calm_phrase]


@pytest.mark.parametrize("language", LANGUAGES)
def test_blame_is_found_in_every_language(language: str) -> None:
    drafts = DRAFTS[language]
    assert drafts.blame_phrase in phrases(drafts.blame, "blame")


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_good_draft_has_no_findings_in_every_language(language: str) -> None:
    assert check_reply(DRAFTS[language].good) == ReplyCheck(language=language, findings=[])


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_good_draft_is_good_for_the_right_reasons(language: str) -> None:
    """Cut the good draft down to its first sentence (the apology): the other checks must now fire."""
    first_sentence = DRAFTS[language].good.split(". ")[0].split("։")[0]
    found = codes(first_sentence, language)
    assert {"single_option", "no_date_time"} <= set(found)
    assert "no_apology" not in found


# --------------------------------------------------------------------------------------------------
# The cases the wiring relies on.

def test_the_brief_s_exact_cases() -> None:
    assert "calm_down" in codes("Please calm down, sir.")
    assert "calm_down" in codes("Успокойтесь, пожалуйста.")
    assert "blame" in codes("This is your fault.")
    assert codes("We are sorry for the delay. We can refund you or send a replacement; we will answer by "
                 "5 December at 14:00.") == []


def test_findings_carry_a_hint_and_point_at_the_original_text() -> None:
    text = "Relax!!! It is YOUR fault, you should have read the manual."
    result = check_reply(text)
    assert [(f.code, text[f.start:f.end]) for f in result.findings if f.start < f.end] == [
        ("calm_down", "Relax"), ("shouting", "!!!"), ("blame", "It is YOUR fault"), ("shouting", "YOUR"),
        ("blame", "you should have")]
    assert all(f.hint == HINTS[f.code] for f in result.findings)
    assert [f.start for f in result.findings] == sorted(f.start for f in result.findings)


def test_missing_things_are_reported_as_an_empty_span_at_the_end() -> None:
    text = "Your order is on its way."
    missing = {f.code: (f.start, f.end) for f in check_reply(text).findings}
    assert missing == {code: (len(text), len(text)) for code in ("no_apology", "single_option", "no_date_time")}


def test_spans_survive_letters_that_change_length_when_lower_cased() -> None:
    """"İ".lower() is two characters; folding must keep every offset in place."""
    text = "İİİ Lütfen sakin olun."
    assert phrases(text, "calm_down", "tr") == ["sakin olun"]


def test_findings_are_frozen() -> None:
    finding = Finding(code="blame", start=0, end=4, hint="x")
    with pytest.raises(ValidationError):
        finding.start = 1


# --------------------------------------------------------------------------------------------------
# calm_down and blame: variants, negations, mixed English.

@pytest.mark.parametrize(("text", "language", "phrase"), [
    ("Don't get upset, we will fix it.", "en", "Don't get upset"),
    ("There is no need to shout.", "en", "no need to shout"),
    ("Не нервничайте, всё исправим.", "ru", "Не нервничайте"),
    ("Не волнуйтесь так, всё исправим.", "ru", "Не волнуйтесь так"),
    ("Calmese, por favor.", "es", "Calmese"),
    ("Tranquilícese, por favor.", "es", "Tranquilícese"),
    ("Regen Sie sich nicht auf.", "de", "Regen Sie sich nicht auf"),
    ("Sakinleşin lütfen.", "tr", "Sakinleşin"),
    ("Sakitləşin, xahiş edirik.", "az", "Sakitləşin"),
    ("Ашуланбаңыз, біз көмектесеміз.", "kk", "Ашуланбаңыз"),
    ("Тынышталыңыз, біз көмектесеміз.", "kk", "Тынышталыңыз"),
    ("Илтимос, тинчланинг.", "uz", "тинчланинг"),
    ("Iltimos, xotirjam boʻling.", "uz", "xotirjam boʻling"),   # U+02BB, the official o'
    ("Iltimos, xotirjam bo’ling.", "uz", "xotirjam bo’ling"),   # U+2019, what phones type
    ("Iltimos, xotirjam boling.", "uz", "xotirjam boling"),     # no apostrophe at all
    ("ЧЕСТНО, УСПОКОЙТЕСЬ.", "ru", "УСПОКОЙТЕСЬ"),
])
def test_calm_down_variants(text: str, language: str, phrase: str) -> None:
    assert phrases(text, "calm_down", language) == [phrase]


@pytest.mark.parametrize(("text", "language", "phrase"), [
    ("You failed to attach the receipt.", "en", "You failed to"),
    ("Вы сами виноваты, надо было читать условия.", "ru", "Вы сами виноваты"),
    ("Вы сами виноваты, надо было читать условия.", "ru", "надо было"),
    ("Vous auriez dû lire le contrat.", "fr", "Vous auriez dû"),
    ("Bu sizin suçunuz.", "tr", "sizin suçunuz"),
    ("Bu sizin səhvinizdir.", "az", "sizin səhvinizdir"),
])
def test_blame_variants(text: str, language: str, phrase: str) -> None:
    assert phrase in phrases(text, "blame", language)


@pytest.mark.parametrize(("text", "language"), [
    ("This is not your fault, and we are sorry.", "en"),
    ("It's not your fault.", "en"),
    ("You should have received a refund e-mail yesterday.", "en"),
    ("Это не ваша вина, нам надо было проверить посылку.", "ru"),
    ("No es su culpa.", "es"),
    ("Das ist nicht Ihre Schuld.", "de"),
    ("Ce n'est pas de votre faute.", "fr"),
    ("Bu sizin hatanız değil.", "tr"),
    ("Bu sizin günahınız deyil.", "az"),
    ("Бұл сіздің кінәңіз емес.", "kk"),
    ("Bu sizning aybingiz emas.", "uz"),
    ("ეს არ არის თქვენი ბრალი.", "ka"),
    ("Դա ձեր մեղքը չէ։", "hy"),
])
def test_saying_it_is_not_their_fault_is_not_blame(text: str, language: str) -> None:
    assert "blame" not in codes(text, language)


def test_english_phrases_count_in_every_language() -> None:
    """CSMs mix English in: the detected language's patterns apply plus the English ones."""
    text = "Приносим извинения, но please calm down."
    assert check_reply(text).language == "ru"
    assert phrases(text, "calm_down") == ["calm down"]


def test_another_language_s_phrases_do_not_apply() -> None:
    """Only the draft's language and English: a Turkish phrase inside a Russian draft is not read."""
    assert "calm_down" not in codes("Мы проверим заказ, sakin olun.", "ru")
    assert "calm_down" in codes("Мы проверим заказ, sakin olun.", "tr")


# --------------------------------------------------------------------------------------------------
# Turkish and Azerbaijani typed without diacritics.

@pytest.mark.parametrize(("text", "language", "code", "phrase"), [
    ("Lutfen sakin olun, siparisinizi kontrol ediyoruz.", "tr", "calm_down", "sakin olun"),
    ("Lutfen sakinlesin, siparisinizi kontrol ediyoruz.", "tr", "calm_down", "sakinlesin"),
    ("Bu tamamen sizin hataniz, talimatlari okumaliydiniz.", "tr", "blame", "sizin hataniz"),
    ("Xahis edirik, sakit olun, sifarisinizi yoxlayiriq.", "az", "calm_down", "sakit olun"),
    ("Xahis edirik, sakitlesin, sifarisinizi yoxlayiriq.", "az", "calm_down", "sakitlesin"),
    ("Bu sizin gunahinizdir, telimati oxumali idiniz.", "az", "blame", "sizin gunahinizdir"),
])
def test_turkish_and_azerbaijani_without_diacritics(text: str, language: str, code: str, phrase: str) -> None:
    assert detect_reply_language(text) == language
    assert phrase in phrases(text, code)


def test_a_good_turkish_draft_without_diacritics_has_no_findings() -> None:
    text = ("Gecikme icin ozur dileriz. Paranizi iade edebiliriz veya yeni bir urun gonderebiliriz. "
            "Size 7 Aralik Pazartesi saat 10:00'a kadar donus yapacagiz.")
    assert check_reply(text) == ReplyCheck(language="tr", findings=[])


# --------------------------------------------------------------------------------------------------
# shouting

@pytest.mark.parametrize(("text", "shouted"), [
    ("We are VERY sorry!!!", ["VERY", "!!!"]),
    ("Please DO NOT send it back.", ["DO NOT"]),
    ("Why?!! We are sorry.", ["!!"]),
    ("Мы ОЧЕНЬ сожалеем.", ["ОЧЕНЬ"]),
    ("ՆԵՐՈՂՈՒԹՅՈՒՆ ենք խնդրում։", ["ՆԵՐՈՂՈՒԹՅՈՒՆ"]),
    ("WE ARE SORRY", ["WE ARE SORRY"]),
])
def test_capitals_and_exclamation_runs_are_shouting(text: str, shouted: list[str]) -> None:
    assert phrases(text, "shouting") == shouted


@pytest.mark.parametrize("text", [
    "We will send the PDF or an SMS with your VIP code.",
    "Thank you! We are sorry.",          # one exclamation mark is fine
    "Send it to the UK or the EU office.",
    "I am sorry, I will fix it.",        # "I" alone is not a run of capitals
    "ბოდიშს გიხდით დაგვიანებისთვის!",    # Georgian has no case
])
def test_acronyms_single_exclamations_and_caseless_scripts_are_not_shouting(text: str) -> None:
    assert "shouting" not in codes(text)


def test_shouting_is_added_to_an_otherwise_good_draft() -> None:
    assert codes(GOOD_EN) == []
    assert phrases(GOOD_EN.replace("sorry", "SORRY"), "shouting") == ["SORRY"]


# --------------------------------------------------------------------------------------------------
# policy_first

def test_policy_before_any_acknowledgement_is_policy_first() -> None:
    text = ("According to our policy, refunds take 14 days. We are sorry for the trouble; we can refund you "
            "or send a new one by Monday at 10:00.")
    assert codes(text) == ["policy_first"]
    assert phrases(text, "policy_first") == ["According to our policy"]


def test_policy_after_an_apology_is_fine() -> None:
    text = ("We are sorry for the trouble. According to our policy, refunds take 14 days; we can refund you "
            "or send a new one by Monday at 10:00.")
    assert codes(text) == []


def test_policy_with_no_acknowledgement_at_all_is_policy_first() -> None:
    text = "Our policy does not allow refunds after 30 days."
    assert phrases(text, "policy_first") == ["Our policy"]
    assert "no_apology" in codes(text)


def test_an_acknowledgement_without_apology_also_comes_first() -> None:
    text = "We understand your frustration. Согласно нашим правилам, возврат занимает 10 дней."
    assert "policy_first" not in codes(text, "ru")
    text = "Согласно нашим правилам, возврат занимает 10 дней. Мы понимаем ваше недовольство."
    assert phrases(text, "policy_first") == ["Согласно нашим правилам"]


def test_every_language_s_policy_phrase_comes_first_when_moved_to_the_front() -> None:
    for language, drafts in DRAFTS.items():
        sentences = drafts.good.replace("։", ". ").split(". ")
        policy_first = ". ".join([sentences[1], sentences[0], *sentences[2:]])
        assert "policy_first" in codes(policy_first, language), language


# --------------------------------------------------------------------------------------------------
# single_option

@pytest.mark.parametrize("text", [
    "We are sorry. We will send a replacement by Monday at 10:00.",
    "We are sorry. We can send a replacement by Monday at 10:00.",
    "We are sorry. If you have questions or concerns, write to us by Monday at 10:00.",  # "or", no offer
    "We are sorry. Here is what we will do:\n1) send a replacement by Monday at 10:00.",
])
def test_one_option_is_single_option(text: str) -> None:
    assert codes(text) == ["single_option"]


@pytest.mark.parametrize("text", [
    GOOD_EN,
    "We are sorry. We could either refund you, or send a replacement by Monday at 10:00.",
    "We are sorry. We can refund you by Monday at 10:00. Alternatively, we can send a replacement.",
    "We are sorry. What we can do:\n1) refund the order;\n2) send a replacement.\nWe reply on Monday at 10:00.",
    "We are sorry. What we can do:\n- refund the order\n- send a replacement\nWe reply on Monday at 10:00.",
    "We are sorry. You may choose: 1) a refund 2) a replacement. We reply on Monday at 10:00.",
])
def test_two_options_are_enough(text: str) -> None:
    assert codes(text) == []


# --------------------------------------------------------------------------------------------------
# no_date_time

@pytest.mark.parametrize("when", [
    "as soon as possible", "soon", "shortly", "tomorrow", "in a few days", "within 24 hours",
])
def test_vague_promises_are_not_a_date(when: str) -> None:
    text = f"We are sorry. We can refund you or send a replacement; we will answer {when}."
    assert codes(text) == ["no_date_time"]


@pytest.mark.parametrize(("when", "language"), [
    ("at 14:00", "en"), ("by 2 pm", "en"), ("tomorrow at 3.", "en"), ("on 2026-12-05", "en"),
    ("on 12.05", "en"), ("on 5/12/2026", "en"), ("on December 5", "en"), ("on Dec 5", "en"),
    ("on 5 May", "en"), ("on Friday", "en"),
    ("завтра до 12.", "ru"), ("в четверг", "ru"), ("5 мая", "ru"),
    ("mañana a las 3", "es"), ("morgen um 15 Uhr", "de"), ("demain à 15 h", "fr"), ("demain à 15h", "fr"),
    ("yarın saat 3", "tr"), ("sabah saat 3", "az"), ("ертең сағат 3", "kk"), ("ertaga soat 3", "uz"),
    ("ხვალ 15 საათზე", "ka"), ("վաղը ժամը 3", "hy"),
])
def test_concrete_dates_and_times(when: str, language: str) -> None:
    assert "no_date_time" not in codes(f"Hello. {when}", language)
    assert "no_date_time" in codes("Hello. soon", language)


def test_may_the_verb_is_not_a_month() -> None:
    assert "no_date_time" in codes("You may get a refund soon.")


# --------------------------------------------------------------------------------------------------
# no_apology

@pytest.mark.parametrize(("text", "language"), [
    ("We apologise for the delay.", "en"), ("We apologize for the delay.", "en"), ("Sorry!", "en"),
    ("Извините за задержку.", "ru"), ("Простите нас.", "ru"),
    ("Lo sentimos mucho.", "es"), ("Perdón por el retraso.", "es"),
    ("Entschuldigung für die Verspätung.", "de"), ("Es tut uns leid.", "de"),
    ("Toutes nos excuses.", "fr"), ("Nous sommes désolés.", "fr"), ("Nous sommes desoles.", "fr"),
    ("Üzgünüz.", "tr"), ("Ozur dileriz.", "tr"), ("Təəssüf edirik.", "az"), ("Uzr isteyirik.", "az"),
    ("Кешіріңіз.", "kk"), ("Kechirasiz.", "uz"), ("Кечирасиз.", "uz"),
    ("ბოდიში.", "ka"), ("Կներեք։", "hy"),
])
def test_apologies_are_recognised(text: str, language: str) -> None:
    assert "no_apology" not in codes(text, language)
    assert "no_apology" in codes("We will look into it.", language)


# --------------------------------------------------------------------------------------------------
# Language detection and the language argument

@pytest.mark.parametrize(("text", "language"), [
    ("", "en"),
    ("12:00 !!!", "en"),
    ("Thank you, we will check the order today.", "en"),
    ("Сәлеметсіз бе! Тапсырысыңыз жолда.", "kk"),
    ("Буюртмангиз йўлда, илтимос кутинг.", "uz"),
    ("Ваш заказ уже в пути, спасибо.", "ru"),
    ("¿Puede enviarnos una foto?", "es"),
    ("Wir prüfen das gerne für Sie.", "de"),
    ("Nous vérifions votre commande.", "fr"),
    ("Buyurtmangiz yo'lda.", "uz"),
    ("Your SMS code is in the PDF we sent you this morning. Спасибо!", "en"),  # mostly English
    ("Код из SMS и PDF-файл отправили вам на почту.", "ru"),  # acronyms don't flip a Russian reply
])
def test_detection_edges(text: str, language: str) -> None:
    assert detect_reply_language(text) == language


def test_a_given_language_overrides_detection() -> None:
    text = "Sakin olun."
    assert check_reply(text, "TR").language == "tr"
    assert check_reply(text, "tr-TR").language == "tr"
    assert phrases(text, "calm_down", "tr") == ["Sakin olun"]


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported reply language"):
        check_reply("Olá", "pt")
