"""The reply check: a linter for a CSM's draft reply to an unhappy customer, in eleven languages.

It turns the seed documents' rules (answer quickly, give a date and time, never say "calm down", never
blame, offer at least two options, apologise) into findings the CSM sees before sending. Pure and
synchronous: stdlib ``re`` and ``unicodedata`` only, no model, so the alerts image stays small.

How it reads a draft:

* **Language.** :func:`detect_reply_language` picks the language by script first (Georgian, Armenian,
  Cyrillic, Latin), then by letters and common words (see its docstring). :func:`check_reply` applies
  that language's patterns **plus the English ones**, because CSMs mix English into their replies.
* **Folding.** Patterns are matched against a folded copy of the text with the same length: non-ASCII
  letters lower-cased and stripped of diacritics (``ş``→``s``, ``ı``→``i``, ``ə``→``e``, ``é``→``e``,
  ``й``→``и``), apostrophe look-alikes (``ʻ ’ ‘ `` ` ``) turned into ``'``; ASCII case is handled by
  ``re.IGNORECASE``. Every character maps to exactly one character, so a match's offsets are offsets
  into the original text, and Turkish, Azerbaijani and Uzbek typed without diacritics match too.
  The patterns are folded the same way, so they are written here with their diacritics.
* **Spans.** ``text[start:end]`` is the offending phrase. Findings about something *missing*
  (``no_apology``, ``single_option``, ``no_date_time``) carry the **empty span at the end of the draft**
  (``start == end == len(text)``): the place to add it, which overlaps no highlighted phrase.
  Findings are sorted by ``(start, end, code)``.

The checks are keyword heuristics, kept simple on purpose; their limits are in each helper's docstring.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

__all__ = ["FINDING_CODES", "HINTS", "LANGUAGES", "Finding", "ReplyCheck", "check_reply",
           "detect_reply_language"]

FINDING_CODES = ("calm_down", "blame", "shouting", "no_apology", "single_option", "no_date_time",
                 "policy_first")
LANGUAGES = ("en", "ru", "es", "de", "fr", "tr", "az", "kk", "uz", "ka", "hy")

# Shown in the CSM's UI, which is in English whatever the draft's language.
HINTS: dict[str, str] = {
    "calm_down": "Never tell a customer to calm down; acknowledge the feeling instead.",
    "blame": "Don't blame the customer; say what happened and what you will do about it.",
    "shouting": "Avoid capitals and repeated exclamation marks; they read as shouting.",
    "no_apology": "Apologise for the trouble (\"We are sorry for ...\").",
    "single_option": "Offer at least two options so the customer can choose.",
    "no_date_time": "Give a concrete date and time for the next answer, not just \"soon\".",
    "policy_first": "Acknowledge the problem before quoting policy.",
}


class Finding(BaseModel):
    """One problem in the draft; ``text[start:end]`` is the phrase (empty at the end when missing)."""

    model_config = ConfigDict(frozen=True)

    code: str
    start: int
    end: int
    hint: str


class ReplyCheck(BaseModel):
    """The language the draft was read in and what is wrong with it (empty when it is fine)."""

    model_config = ConfigDict(frozen=True)

    language: str
    findings: list[Finding]


# --------------------------------------------------------------------------------------------------
# Folding: same length, so match offsets are offsets into the original text.

_APOSTROPHES = frozenset("\u2019\u2018\u02bc\u02bb\u0060\u00b4\u2032")
_SPECIAL_FOLDS = {"ı": "i", "ə": "e", "\u2010": "-", "\u2011": "-"}
# "où" (where) must stay apart from "ou" (or): French alternatives are counted by "ou".
_KEEP = frozenset("ù")


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    if ch in _APOSTROPHES:
        return "'"
    if ch < "\x80":
        return ch  # ASCII case is left to re.IGNORECASE, so regex escapes like \D keep their meaning
    low = ch.lower()[0]  # "İ".lower() is two characters; its first is "i"
    if low in _SPECIAL_FOLDS:
        return _SPECIAL_FOLDS[low]
    if low in _KEEP:
        return low
    decomposed = unicodedata.normalize("NFD", low)
    if len(decomposed) > 1 and all(unicodedata.combining(c) for c in decomposed[1:]):
        return decomposed[0]
    return low


def _fold(text: str) -> str:
    return "".join(map(_fold_char, text))


# --------------------------------------------------------------------------------------------------
# Per-language phrases. Each entry is one regex alternative, written with its diacritics.

@dataclass(frozen=True)
class _Phrases:
    calm_down: tuple[str, ...] = ()
    blame: tuple[str, ...] = ()
    apology: tuple[str, ...] = ()
    # Acknowledging the problem without an apology word ("we understand", "thank you"); apologies count too.
    acknowledgement: tuple[str, ...] = ()
    policy: tuple[str, ...] = ()
    # Words that join alternatives ("or") or announce another one ("alternatively").
    alternatives: tuple[str, ...] = ()
    # Words that make a sentence an offer ("we can", "would you prefer").
    offers: tuple[str, ...] = ()
    # Weekday and month names and hour phrases that only this language writes.
    date_time: tuple[str, ...] = ()


_HOUR = r"(?:[01]?\d|2[0-3])"

# Numeric times and dates read the same in every language.
_UNIVERSAL_DATE_TIME = (
    rf"\b{_HOUR}[:.][0-5]\d\b",                                       # 14:00, 14.00
    rf"\b{_HOUR}\s?h(?:[0-5]\d)?\b",                                   # 14h, 14h30
    r"\b(?:1[0-2]|0?[1-9])(?::[0-5]\d)?\s*(?:(?:am|pm)\b|a\.m\.|p\.m\.)",  # 2 pm, 2:30pm
    r"\b\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])\b",           # 2026-12-05
    r"\b(?:0?[1-9]|[12]\d|3[01])[./](?:0?[1-9]|1[0-2])(?:[./](?:\d{4}|\d{2}))?\b",  # 12.05, 5/12/2026
)

_PHRASES: dict[str, _Phrases] = {
    "en": _Phrases(
        calm_down=(r"\bcalm\s+down\b", r"\bcool\s+down\b", r"\bsettle\s+down\b", r"\brelax\b",
                   r"\bchill\s+out\b", r"\b(?:stay|keep|be)\s+calm\b",
                   r"\b(?:don't|do\s+not)\s+(?:get|be)\s+(?:so\s+)?(?:upset|angry|emotional|worked\s+up)\b",
                   r"\bno\s+need\s+to\s+(?:shout|yell|get\s+(?:upset|angry))\b",
                   r"\bstop\s+(?:shouting|yelling)\b"),
        blame=(r"(?<!not\s)(?<!n't\s)(?:(?:this|that|it)\s+(?:is|was|'s)\s+(?:all\s+|entirely\s+|completely\s+)?)?"
               r"your\s+(?:own\s+)?fault\b",
               r"\byou\s+should(?:\s+have|'ve)\b(?!\s+(?:received|got|gotten|been\s+(?:sent|given|notified|contacted|refunded)))",
               r"\byou\s+failed\s+to\b", r"\byou\s+(?:forgot|neglected)\s+to\b",
               r"\byou\s+(?:did\s*n't|did\s+not)\s+(?:read|follow|check|fill|provide|attach|notice)\b",
               r"\bif\s+you\s+had\s+(?:read|followed|checked)\b", r"\buser\s+error\b"),
        apology=(r"\bsorry\b", r"\bapolog\w*"),
        acknowledgement=(r"\b(?:i|we)\s+(?:fully\s+|completely\s+)?understand\b", r"\bthank(?:s|\s+you)\b",
                         r"\b(?:i|we)\s+appreciate\b", r"\byou(?:'re|\s+are)\s+right\b", r"\bfrustrat\w*",
                         r"\bwe\s+hear\s+you\b", r"\bthat\s+must\s+(?:be|have\s+been)\b"),
        policy=(r"\baccording\s+to\s+(?:our|the)\s+(?:company\s+|store\s+)?(?:polic(?:y|ies)|rules|terms)\b",
                r"\bas\s+per\s+(?:our\s+)?(?:polic(?:y|ies)|terms)\b", r"\bper\s+our\s+polic(?:y|ies)\b",
                r"\bour\s+(?:company\s+)?polic(?:y|ies)\b", r"\bcompany\s+policy\b",
                r"\bterms\s+(?:and|&)\s+conditions\b", r"\bour\s+terms\s+of\s+(?:service|use)\b"),
        alternatives=(r"\bor\b", r"\beither\b", r"\balternatively\b", r"\banother\s+option\b",
                      r"\b(?:two|three|several|both)\s+options\b"),
        offers=(r"\b(?:we|i)(?:\s+(?:can|could|will|would)|'ll|'d)\b", r"\bwe\s+offer\b",
                r"\byou\s+(?:can|could|may)\b", r"\bwould\s+you\s+(?:like|prefer)\b", r"\bprefer\w*",
                r"\bchoose\b", r"\boptions?\b", r"\bhappy\s+to\b"),
        date_time=(r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b",
                   r"\b(?:january|february|march|april|june|july|august|september|october|november|december)\b",
                   # "may" is also a verb: only next to a day number
                   r"\b\d{1,2}(?:st|nd|rd|th)?\s+may\b", r"\bmay\s+\d{1,2}\b",
                   r"\b(?:jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)\.?\s+\d{1,2}\b",
                   rf"\b(?:at|by|before|until)\s+{_HOUR}(?:\s*o'clock)?"
                   r"(?=\s*(?:[.,;!?)]|$|o'clock|(?:today|tomorrow|tonight|on|in\s+the)\b))",
                   r"\b(?:at|by|before)\s+(?:noon|midday|midnight)\b"),
    ),
    "ru": _Phrases(
        calm_down=(r"\bуспокойтесь\b", r"\bуспокойся\b", r"\bне\s+нервничайте\b", r"\bне\s+нервничай\b",
                   r"\bне\s+волнуйтесь\s+так\b", r"\bне\s+переживайте\s+так\b", r"\bне\s+кричите\b",
                   r"\bне\s+горячитесь\b", r"\bне\s+злитесь\b",
                   r"\bне\s+(?:надо|нужно|стоит)\s+(?:так\s+)?(?:нервничать|волноваться|кричать|злиться)\b",
                   r"\bдержите\s+себя\s+в\s+руках\b"),
        blame=(r"(?<!не\s)(?:это\s+)?ваша\s+(?:собственная\s+)?вина\b", r"\bпо\s+вашей\s+(?:собственной\s+)?вине\b",
               r"\b(?:вы\s+)?сами\s+виноваты\b", r"(?<!не\s)\bвы\s+виноваты\b",
               r"(?<!нам\s)(?<!мне\s)\b(?:надо|нужно)\s+было\b", r"\bвам\s+следовало\b",
               r"\bвы\s+должны\s+были\b(?!\s+получить)",
               r"\bвы\s+не\s+(?:прочитали|прочли|ознакомились|проверили|указали)\b", r"\bвы\s+невнимательно\b"),
        apology=(r"\bизвин\w*", r"\bпрости(?:те)?\b", r"\bпрошу\s+прощения\b", r"\bприносим\s+(?:свои\s+)?извинения\b",
                 r"\bсожалеем\b"),
        acknowledgement=(r"\bпонима\w*", r"\bспасибо\b", r"\bблагодар\w*", r"\bвы\s+правы\b"),
        policy=(r"\bсогласно\s+(?:нашим\s+|нашей\s+)?(?:правилам|политике|условиям)\b",
                r"\bпо\s+(?:нашим\s+)?правилам\b", r"\b(?:наша|нашей|нашу)\s+политик\w*",
                r"\bв\s+соответствии\s+с\s+(?:нашими\s+|нашей\s+)?(?:правилами|политикой|условиями)\b",
                r"\bусловия\w*\s+(?:договора|оферты|обслуживания)\b"),
        alternatives=(r"\bили\b", r"\bлибо\b", r"\bв\s+качестве\s+альтернативы\b", r"\bдругой\s+вариант\b",
                      r"\bдва\s+варианта\b"),
        offers=(r"\bможем\b", r"\bмогли\s+бы\b", r"\bготовы\b", r"\bпредлага\w*", r"\bпредложим\b",
                r"\bвы\s+можете\b", r"\bвыбер\w*", r"\bвыбрать\b", r"\bвариант\w*", r"\bхотите\b",
                r"\bпредпочита\w*"),
        date_time=(r"\bпонедельник\w*", r"\bвторник\w*", r"\bсред[уы]\b", r"\bчетверг\w*", r"\bпятниц\w*",
                   r"\bсуббот\w*", r"\bвоскресень\w*",
                   r"\b(?:январ|феврал|апрел|июн|июл|сентябр|октябр|ноябр|декабр)[ьяеюи]\w*",
                   r"\bмарт\w*", r"\bма[йяе]\b", r"\bавгуст\w*",
                   rf"\b(?:в|до|к)\s+{_HOUR}(?=\s*(?:[.,;!?)]|$|час|ч\b|утра|вечера|дня|ночи))",
                   r"\b(?:в\s+полдень|до\s+полудня)\b"),
    ),
    "es": _Phrases(
        calm_down=(r"\bc[aá]lme(?:se|nse|te)\b", r"\bc[aá]lmate\b", r"\btranquil[ií][cz](?:e|ese|ense|ate)\b",
                   r"\bmantenga\s+la\s+calma\b", r"\bno\s+se\s+(?:enoje|enfade|altere|ponga\s+así)\b",
                   r"\bno\s+(?:hace\s+falta|es\s+necesario)\s+gritar\b", r"\bno\s+grite\b"),
        blame=(r"(?<!no\s)\b(?:es|fue)\s+(?:su|tu)\s+(?:propia\s+)?culpa\b", r"(?<!no\s)\bes\s+culpa\s+suya\b",
               r"\bpor\s+su\s+(?:propia\s+)?culpa\b", r"\busted\s+debi[oó]\b",
               r"\bdeber[ií]a\s+haber\s+(?:leído|revisado|comprobado|seguido)\b",
               r"\busted\s+no\s+(?:leyó|siguió|revisó|comprobó)\b"),
        apology=(r"\bdisculp\w*", r"\blo\s+(?:sentimos|siento)\b", r"\bperd[oó]n\w*", r"\blamentamos\b"),
        acknowledgement=(r"\bentiend\w*", r"\bcomprend\w*", r"\bgracias\b", r"\bagradec\w*",
                         r"\btiene\s+raz[oó]n\b"),
        policy=(r"\bseg[uú]n\s+(?:nuestras?|las?)\s+(?:pol[ií]ticas?|normas|condiciones)\b",
                r"\b(?:de\s+acuerdo\s+con|conforme\s+a)\s+(?:nuestras?|las?)\s+(?:pol[ií]ticas?|normas|condiciones)\b",
                r"\bnuestra\s+pol[ií]tica\b", r"\bt[eé]rminos\s+y\s+condiciones\b"),
        alternatives=(r"\bo\b", r"\bu\b", r"\bo\s+bien\b", r"\balternativamente\b", r"\botra\s+opci[oó]n\b",
                      r"\bdos\s+opciones\b"),
        offers=(r"\bpodemos\b", r"\bpodr[ií]amos\b", r"\bpuede\b", r"\bpuedes\b", r"\bofrec\w*",
                r"\bprefier\w*", r"\belegir\b", r"\bopci\w*", r"\bvamos\s+a\b"),
        date_time=(r"\b(?:lunes|martes|mi[eé]rcoles|jueves|viernes|s[aá]bado|domingo)\b",
                   r"\b(?:enero|febrero|marzo|abril|mayo|junio|julio|agosto|se?ptiembre|octubre|noviembre"
                   r"|diciembre)\b",
                   rf"\ba\s+las?\s+{_HOUR}\b", rf"\bantes\s+de\s+las?\s+{_HOUR}\b", r"\bal\s+mediod[ií]a\b"),
    ),
    "de": _Phrases(
        calm_down=(r"\bberuhigen\s+sie\s+sich\b", r"\bberuhig(?:e)?\s+dich\b",
                   r"\bregen\s+sie\s+sich\s+(?:bitte\s+)?nicht\s+(?:so\s+)?auf\b", r"\breg\s+dich\s+nicht\s+auf\b",
                   r"\bbleiben\s+sie\s+ruhig\b", r"\bkein\s+grund\s+(?:zu\s+schreien|sich\s+aufzuregen)\b",
                   r"\bschreien\s+sie\s+nicht\b"),
        blame=(r"(?<!nicht\s)(?:das\s+ist\s+)?(?:ihre|deine)\s+(?:eigene\s+)?schuld\b", r"\bselbst\s+schuld\b",
               # "Sie hätten ... sollen"; "Sie hätten ... erhalten sollen" (you should have received) is not blame
               r"\bsie\s+hätten\b(?![^.!?\n]*\berhalten)[^.!?\n]{0,80}?\b(?:sollen|müssen)\b",
               r"\bsie\s+haben\s+(?:\w+\s+){0,4}?nicht\s+(?:gelesen|beachtet|befolgt|geprüft)\b",
               r"\bsie\s+haben\s+(?:es\s+)?versäumt\b"),
        apology=(r"\bentschuldig\w*", r"\btut\s+(?:uns|mir)\s+(?:sehr\s+|aufrichtig\s+|wirklich\s+)?leid\b",
                 r"\bbedauern\b", r"\bverzeih\w*"),
        acknowledgement=(r"\bverstehe\w*", r"\bverständ\w*", r"\bdank\w*", r"\bsie\s+haben\s+recht\b"),
        policy=(r"\b(?:gemäß|laut)\s+(?:unseren|unserer|den|der)\s+(?:richtlinien?|agb|(?:allgemeinen\s+)?"
                r"geschäftsbedingungen|bedingungen)\b",
                r"\bunsere[rn]?\s+richtlinien?\b", r"\b(?:allgemeinen\s+)?geschäftsbedingungen\b", r"\bagb\b"),
        alternatives=(r"\boder\b", r"\bentweder\b", r"\balternativ\w*", r"\b(?:zwei|andere)\s+möglichkeit\w*"),
        offers=(r"\bwir\s+(?:können|könnten|werden|bieten)\b", r"\bkönnen\s+wir\b", r"\bsie\s+können\b",
                r"\bmöchten\s+sie\b", r"\bbieten\b", r"\bwählen\b", r"\bmöglichkeit\w*", r"\bgerne?\b"),
        date_time=(r"\b(?:montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonnabend|sonntag)\w*",
                   r"\b(?:januar|jänner|februar|märz|april|mai|juni|juli|august|september|oktober|november"
                   r"|dezember)\b",
                   rf"\b{_HOUR}(?:[:.][0-5]\d)?\s*uhr\b", rf"\bum\s+{_HOUR}(?=\s*(?:[.,;!?)]|$))"),
    ),
    "fr": _Phrases(
        calm_down=(r"\bcalmez[-\s]vous\b", r"\bcalme[-\s]toi\b", r"\brestez\s+calme\b",
                   r"\bne\s+vous\s+(?:énervez|fâchez)\s+pas\b", r"\b(?:inutile|pas\s+besoin)\s+de\s+crier\b",
                   r"\bne\s+criez\s+pas\b"),
        blame=(r"(?<!pas\s)(?<!pas\sde\s)(?:c'est\s+)?(?:de\s+)?votre\s+(?:propre\s+)?faute\b",
               r"\bvous\s+auriez\s+dû\b(?!\s+recevoir)", r"\bvous\s+n'avez\s+pas\s+(?:lu|suivi|vérifié)\b",
               r"\bvous\s+deviez\b(?!\s+recevoir)"),
        apology=(r"\bdésolé\w*", r"\bexcuse\w*", r"\bpardon\w*", r"\bnous\s+regrettons\b"),
        acknowledgement=(r"\bcompren\w*", r"\bmerci\b", r"\bremerci\w*", r"\bvous\s+avez\s+raison\b"),
        policy=(r"\b(?:selon|conformément\s+à|d'après)\s+(?:notre|nos)\s+(?:politiques?|conditions|règles)\b",
                r"\bnotre\s+politique\b", r"\bconditions\s+générales\b"),
        alternatives=(r"\bou\b", r"\bsoit\b", r"\balternativement\b", r"\b(?:autre|deux)\s+options?\b"),
        offers=(r"\bnous\s+(?:pouvons|pourrions|allons|proposons|vous\s+proposons)\b", r"\bvous\s+pouvez\b",
                r"\bpropos\w*", r"\bpréfér\w*", r"\bchoisir\b", r"\boptions?\b"),
        date_time=(r"\b(?:lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche)\b",
                   r"\b(?:janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre"
                   r"|décembre)\b",
                   rf"\b{_HOUR}\s*heures?\b", r"\b(?:à|avant)\s+midi\b"),
    ),
    "tr": _Phrases(
        calm_down=(r"\bsakin\s+ol(?:un(?:uz)?)?\b", r"\bsakinleş(?:in(?:iz)?)?\b", r"\bsinirlenmeyin(?:iz)?\b",
                   r"\bbağırmayın(?:ız)?\b", r"\bbağırmanıza\s+gerek\s+yok\b", r"\bkendinize\s+gelin\b"),
        blame=(r"\bsizin\s+(?:hatanız|suçunuz|kusurunuz)\w*+(?!\s+değil)", r"\b(?:hata|suç)\s+sizde\b",
               # "-malıydınız / -meliydiniz": you should have ...
               r"\b\w+m[ae]l[iı]yd[iı]n[iı]z\b", r"\bokumadınız\b"),
        apology=(r"\bözür\w*", r"\büzgün(?:üz|üm)\b", r"\baffedersiniz\b", r"\bkusura\s+bakmayın\w*"),
        acknowledgement=(r"\banlıyor\w*", r"\bteşekkür\w*", r"\bhaklısınız\b", r"\bsağ\s+olun\b"),
        policy=(r"\b(?:politikamız|kurallarımız)\s+gereği\b", r"\b(?:politikamıza|kurallarımıza)\s+göre\b",
                r"\bpolitikamız\w*", r"\bşartlar\s+ve\s+koşullar\w*", r"\bkullanım\s+koşulları\w*"),
        alternatives=(r"\bveya\b", r"\bya\s+da\b", r"\byahut\b", r"\bveyahut\b", r"\balternatif\w*",
                      r"\b(?:iki|başka\s+bir|diğer\s+bir)\s+seçenek\w*"),
        offers=(r"\b\w+[ae]bilir(?:iz|siniz)\b", r"\bsunuyoruz\b", r"\bseçenek\w*", r"\btercih\w*",
                r"\bister\s+misiniz\b"),
        date_time=(r"\b(?:pazartesi|salı|çarşamba|perşembe|cuma|cumartesi|pazar)\w*",
                   r"\b(?:ocak|şubat|mart|nisan|mayıs|haziran|temmuz|ağustos|eylül|ekim|kasım|aralık)\w*",
                   rf"\bsaat\s+{_HOUR}\b", r"\böğleye\s+kadar\b"),
    ),
    "az": _Phrases(
        calm_down=(r"\bsakit\s+ol(?:un)?\b", r"\bsakitləş(?:in)?\b", r"\bəsəbiləşməyin\b", r"\bhirslənməyin\b",
                   r"\bqışqırmayın\b"),
        blame=(r"\bsizin\s+(?:günahınız|səhviniz|təqsiriniz)\w*+(?!\s+deyil)", r"\b(?:günah|səhv)\s+sizdədir\b",
               r"\b\w+m[əa]l[iı]\s+idiniz\b", r"\b\w+m[əa]l[iı]ydınız\b"),
        apology=(r"\büzr\w*", r"\btəəssüf\w*", r"\bbağışlayın\b"),
        acknowledgement=(r"\banlayır\w*", r"\bbaşa\s+düşürük\b", r"\bbaşa\s+düşürəm\b", r"\btəşəkkür\w*",
                         r"\bsağ\s+olun\b", r"\bhaqlısınız\b"),
        policy=(r"\b(?:qaydalarımıza|siyasətimizə)\s+görə\b", r"\bqaydalarımız\w*", r"\bsiyasətimiz\w*",
                r"\bşərtlər\s+və\s+qaydalar\b"),
        alternatives=(r"\bvə\s+ya\b", r"\byaxud\b", r"\byoxsa\b", r"\bya\s+da\b", r"\balternativ\w*",
                      r"\b(?:iki|başqa|digər)\s+(?:seçim|variant)\w*"),
        offers=(r"\bbilərik\b", r"\bbilərsiniz\b", r"\btəklif\w*", r"\bseçim\w*", r"\bvariant\w*",
                r"\bistəyirsiniz\b"),
        date_time=(r"\bbazar\s+ertəsi\b", r"\bçərşənbə\w*", r"\bcümə\w*", r"\bşənbə\w*", r"\bbazar\b",
                   r"\b(?:yanvar|fevral|mart|aprel|may|iyun|iyul|avqust|sentyabr|oktyabr|noyabr|dekabr)\w*",
                   rf"\bsaat\s+{_HOUR}\b"),
    ),
    "kk": _Phrases(
        calm_down=(r"\bсабыр\s+(?:етіңіз|сақтаңыз)\b", r"\bашуланбаңыз\b", r"\bтынышталыңыз\b",
                   r"\bайқайламаңыз\b", r"\bренжімеңіз\b"),
        blame=(r"\bсіздің\s+кінәңіз\w*+(?!\s+емес)", r"\bөз\s+кінәңіз\w*", r"\bкінә\s+сізде\b",
               r"\b\w+(?:ыңыз|іңіз)\s+керек\s+еді\w*", r"\bоқымадыңыз\b"),
        apology=(r"\bкешір\w*", r"\bғафу\w*", r"\bөкінеміз\b", r"\bөкініш\w*"),
        acknowledgement=(r"\bтүсін\w*", r"\bрахмет\b", r"\bалғыс\w*", r"\bсіз\s+дұрыс\w*"),
        policy=(r"\b(?:ережелерімізге|саясатымызға)\s+сәйкес\b", r"\bережелеріміз\w*", r"\bсаясатымыз\w*",
                r"\bережелер?\s+бойынша\b"),
        alternatives=(r"\bнемесе\b", r"\bяки\b", r"\bболмаса\b", r"\b(?:басқа|екі)\s+нұсқа\w*"),
        offers=(r"\bаламыз\b", r"\bаласыз\b", r"\bұсын\w*", r"\bнұсқа\w*", r"\bтаңда\w*", r"\bқалайсыз\w*"),
        date_time=(r"\b(?:дүйсенбі|сейсенбі|сәрсенбі|бейсенбі|жұма|сенбі|жексенбі)\w*",
                   r"\b(?:қаңтар|ақпан|наурыз|сәуір|мамыр|маусым|шілде|тамыз|қыркүйек|қазан|қараша"
                   r"|желтоқсан)\w*",
                   rf"\bсағат\s+{_HOUR}\b"),
    ),
    "uz": _Phrases(
        calm_down=(r"\btinchlaning\b", r"\bxotirjam\s+bo'?ling\b", r"\basabiylashmang\b",
                   r"\bjahl(?:ingiz)?\s+qilmang\b", r"\bbaqirmang\b",
                   r"\bтинчланинг\b", r"\bхотиржам\s+бўлинг\b", r"\bасабийлашманг\b", r"\bбақирманг\b"),
        blame=(r"\bsizning\s+aybingiz\w*+(?!\s+emas)", r"\bo'?zingiz\s+aybdorsiz\b", r"\bsiz\s+aybdorsiz\b",
               r"(?<![\w'])[\w']+ishingiz\s+kerak\s+edi\b", r"\bo'?qimadingiz\b",
               r"\bсизнинг\s+айбингиз\w*+(?!\s+эмас)", r"\bўзингиз\s+айбдорсиз\b",
               r"\b\w+ишингиз\s+керак\s+эди\b"),
        apology=(r"\buzr\w*", r"\bkechir\w*", r"\bafsus\w*", r"\bузр\w*", r"\bкечир\w*", r"\bафсус\w*"),
        acknowledgement=(r"\btushun\w*", r"\brahmat\b", r"\bminnatdor\w*", r"\bhaqsiz\b",
                         r"\bтушун\w*", r"\bрахмат\b", r"\bминнатдор\w*"),
        policy=(r"\b(?:qoidalarimizga|siyosatimizga)\s+ko'?ra\b", r"\bqoidalarimiz\w*", r"\bsiyosatimiz\w*",
                r"\b(?:қоидаларимизга|сиёсатимизга)\s+кўра\b", r"\bқоидаларимиз\w*"),
        alternatives=(r"\byoki\b", r"\bёки\b", r"\bmuqobil\w*", r"\b(?:boshqa|ikki)\s+variant\w*",
                      r"\b(?:бошқа|икки)\s+вариант\w*"),
        offers=(r"\bolamiz\b", r"\bmumkin\b", r"\btaklif\w*", r"\bvariant\w*", r"\btanla\w*", r"\bistaysizmi\b",
                r"\bоламиз\b", r"\bмумкин\b", r"\bтаклиф\w*", r"\bвариант\w*", r"\bтанла\w*"),
        date_time=(r"\b(?:dushanba|seshanba|chorshanba|payshanba|juma|shanba|yakshanba)\w*",
                   r"\b(?:yanvar|fevral|mart|aprel|may|iyun|iyul|avgust|sentyabr|oktyabr|noyabr|dekabr)\w*",
                   r"\b(?:душанба|сешанба|чоршанба|пайшанба|жума|шанба|якшанба)\w*",
                   r"\b(?:январ|феврал|март|апрел|май|июн|июл|август|сентябр|октябр|ноябр|декабр)\w*",
                   rf"\b(?:soat|соат)\s+{_HOUR}\b"),
    ),
    "ka": _Phrases(
        calm_down=(r"\bდამშვიდდ\w*", r"\bდაწყნარდ\w*", r"\bნუ\s+(?:ნერვიულობთ|ყვირით|ბრაზდებით)\b"),
        blame=(r"\bთქვენი\s+ბრალია\b", r"\bთქვენი\s+ბრალი\s+(?:არის|იყო)\b", r"\bბრალი\s+თქვენზეა\b",
               r"\bთქვენ\s+(?:თავად\s+)?ხართ\s+დამნაშავე\b", r"\bუნდა\s+(?:წაგეკითხათ|შეგემოწმებინათ)\b"),
        apology=(r"\bბოდიშ\w*", r"\bვწუხვარ(?:თ)?\b"),
        acknowledgement=(r"\b(?:გვესმის|მესმის)\b", r"\bგმადლობთ\b", r"\bმადლობა\b", r"\bმართალი\s+ხართ\b"),
        policy=(r"\b(?:ჩვენი\s+)?(?:წესების|პოლიტიკის)\s+თანახმად\b", r"\bწესებისა\s+და\s+პირობების\b"),
        alternatives=(r"\bან\b", r"\bანდა\b", r"\bალტერნატიულ\w*", r"\b(?:სხვა|ორი)\s+ვარიანტ\w*"),
        offers=(r"\bშეგვიძლია\b", r"\bშეგიძლიათ\b", r"\bგთავაზობთ\b", r"\bვარიანტ\w*", r"\bაირჩი\w*",
                r"\bგსურთ\b"),
        date_time=(r"\b(?:ორშაბათ|სამშაბათ|ოთხშაბათ|ხუთშაბათ|პარასკევ|შაბათ)\w*", r"\bკვირას\b",
                   r"\b(?:იანვარ|თებერვალ|მარტ|აპრილ|მაის|ივნის|ივლის|აგვისტო|სექტემბერ|ოქტომბერ|ნოემბერ"
                   r"|დეკემბერ)\w*",
                   rf"\b{_HOUR}\s*საათ(?:ზე|ამდე)\b"),
    ),
    "hy": _Phrases(
        calm_down=(r"\bհանգստաց(?:եք|իր)\b", r"\bմի\s+(?:ջղայնացեք|բղավեք)\b", r"\bհանգիստ\s+մնացեք\b"),
        blame=(r"\bձեր\s+մեղքն\s+է\b", r"\bձեր\s+մեղքով\b", r"\bդուք\s+(?:ինքներդ\s+)?եք\s+մեղավոր\b",
               r"\bպետք\s+է\s+կարդայիք\b", r"\bչեք\s+կարդացել\b"),
        apology=(r"\bներողություն\w*", r"\bկներեք\b", r"\bներեցեք\b", r"\bցավում\s+ենք\b"),
        acknowledgement=(r"\bհասկանում\s+(?:ենք|եմ)\b", r"\bշնորհակալ\w*", r"\bճիշտ\s+եք\b"),
        policy=(r"\b(?:մեր\s+)?(?:կանոնների|քաղաքականության|պայմանների)\s+համաձայն\b",),
        alternatives=(r"\bկամ\b", r"\bայլընտրանք\w*", r"\b(?:երկու|այլ)\s+տարբերակ\w*"),
        offers=(r"\bկարող\s+(?:ենք|եք)\b", r"\bառաջարկ\w*", r"\bտարբերակ\w*", r"\bընտր\w*",
                r"\bցանկանում\s+եք\b"),
        date_time=(r"\b(?:երկուշաբթի|երեքշաբթի|չորեքշաբթի|հինգշաբթի|ուրբաթ|կիրակի)\w*", r"\bշաբաթ\s+օրը\b",
                   r"\b(?:հունվար|փետրվար|մարտ|ապրիլ|մայիս|հունիս|հուլիս|օգոստոս|սեպտեմբեր|հոկտեմբեր"
                   r"|նոյեմբեր|դեկտեմբեր)\w*",
                   rf"\bժամը\s+{_HOUR}\b"),
    ),
}


@dataclass(frozen=True)
class _Rules:
    calm_down: re.Pattern[str]
    blame: re.Pattern[str]
    apology: re.Pattern[str]
    acknowledgement: re.Pattern[str]
    policy: re.Pattern[str]
    alternatives: re.Pattern[str]
    offers: re.Pattern[str]
    date_time: re.Pattern[str]


def _compile(alternatives: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first, so "according to our policy" wins over "our policy" where both start at one place.
    ordered = sorted({_fold(a) for a in alternatives}, key=len, reverse=True)
    return re.compile("|".join(f"(?:{a})" for a in ordered), re.IGNORECASE)


def _rules_for(language: str) -> _Rules:
    own, english = _PHRASES[language], _PHRASES["en"]
    sources = (own,) if language == "en" else (own, english)

    def merged(field: str, *extra: str) -> re.Pattern[str]:
        return _compile(tuple(a for s in sources for a in getattr(s, field)) + extra)

    return _Rules(
        calm_down=merged("calm_down"), blame=merged("blame"), apology=merged("apology"),
        acknowledgement=merged("acknowledgement", *own.apology, *english.apology),
        policy=merged("policy"), alternatives=merged("alternatives"), offers=merged("offers"),
        date_time=merged("date_time", *_UNIVERSAL_DATE_TIME))


_RULES: dict[str, _Rules] = {language: _rules_for(language) for language in LANGUAGES}


# --------------------------------------------------------------------------------------------------
# Language detection

_KAZAKH_ONLY = frozenset("әңөұүһі")
_UZBEK_CYRILLIC_ONLY = frozenset("ўҳ")
_SHARED_KK_UZ = frozenset("қғ")

_CYRILLIC_STOPWORDS: dict[str, frozenset[str]] = {
    "ru": frozenset("и в не на что мы вы вам вас это с по для пожалуйста как но ваш ваша ваше ваши "
                    "заказ уже его она они если или был была будет можем ответим".split()),
    "uz": frozenset("ва учун билан илтимос мумкин керак эмас сиз биз сизга бизга ҳам бу ёки сизнинг "
                    "бизнинг рахмат жавоб берамиз қиламиз буюртма буюртмангиз".split()),
}

_LATIN_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and you your we to of for is are please will can this that with our it be by or "
                    "sorry thank thanks in on at have not i us".split()),
    "es": frozenset("el la los las de del que y en por para con su sus usted le lo es una un nosotros "
                    "podemos gracias muy se como al pero o este esta hoy mañana manana".split()),
    "de": frozenset("der die das und ist sie ihr ihre ihnen wir nicht mit für fur auf ein eine es zu den "
                    "dem von bitte uns unsere können konnen oder bis um uhr ich sich".split()),
    "fr": frozenset("le la les des du de et est vous votre vos nous notre pour avec pas une un que qui en "
                    "sur ce merci ou au aux sommes pouvons je".split()),
    "tr": frozenset("ve bir bu için icin ile size sizin bize lütfen lutfen değil degil çok cok daha olarak "
                    "gibi ama veya yarın yarin kadar tamamen siparişiniz siparisiniz".split()),
    "az": frozenset("və üçün ucun xahiş xahis edirik bu sizin sizə bizim deyil yox olaraq ilə bilərik "
                    "bilerik olun cavab çox cox bir sifarişiniz sifarisiniz".split()),
    "uz": frozenset("va uchun bilan siz sizga sizning bizning iltimos mumkin kerak emas ham bu yoki javob "
                    "beramiz qilamiz rahmat kechirasiz ertaga bugun soat buyurtma buyurtmangiz".split()),
}
# When scores tie, the earlier language wins: English when nothing else stands out.
_LATIN_ORDER = ("en", "tr", "es", "de", "fr", "uz", "az")

_WORD = re.compile(r"[\w']+")
_UZBEK_APOSTROPHE_WORD = re.compile(r"\w*[og]'\w+")
_TURKISH_PROGRESSIVE = re.compile(r"\w+yor(?:um|uz|sunuz|lar)?$")
_AZERBAIJANI_VERB = re.compile(r"\w+(?:[ıiuü]r[ıiuü][qk]|c[əa][ğgy][ıi][qk])$")

# Letters that point at a Latin-script language, and how strongly.
_LATIN_LETTERS: dict[str, dict[str, float]] = {
    "ñ": {"es": 2}, "¿": {"es": 2}, "¡": {"es": 2},
    "á": {"es": 1}, "í": {"es": 1}, "ó": {"es": 1}, "ú": {"es": 1}, "é": {"es": 0.5, "fr": 0.5},
    "ß": {"de": 2}, "ä": {"de": 1}, "ö": {"de": 0.5, "tr": 0.5, "az": 0.5}, "ü": {"de": 0.5, "tr": 0.5, "az": 0.5},
    "è": {"fr": 1}, "ê": {"fr": 1}, "à": {"fr": 1}, "â": {"fr": 1}, "î": {"fr": 1}, "ô": {"fr": 1},
    "û": {"fr": 1}, "ù": {"fr": 1}, "œ": {"fr": 1}, "ë": {"fr": 1}, "ï": {"fr": 1},
    "ç": {"fr": 0.5, "tr": 0.5, "az": 0.5},
    "ı": {"tr": 1, "az": 1}, "ğ": {"tr": 1, "az": 1}, "ş": {"tr": 1, "az": 1},
}


def _script_counts(text: str) -> dict[str, int]:
    counts = {"ka": 0, "hy": 0, "cyrl": 0, "latn": 0}
    for ch in text:
        code = ord(ch)
        if 0x10A0 <= code <= 0x10FF or 0x1C90 <= code <= 0x1CBF or 0x2D00 <= code <= 0x2D2F:
            counts["ka"] += 1
        elif 0x0531 <= code <= 0x0588 or 0xFB13 <= code <= 0xFB17:
            counts["hy"] += 1
        elif 0x0400 <= code <= 0x052F:
            counts["cyrl"] += 1
        elif ch.isalpha() and (code < 0x0250 or 0x1E00 <= code <= 0x1EFF or ch in "əƏ"):
            counts["latn"] += 1
    return counts


def _detect_cyrillic(low: str) -> str:
    kazakh = sum(ch in _KAZAKH_ONLY for ch in low)
    uzbek = sum(ch in _UZBEK_CYRILLIC_ONLY for ch in low)
    if kazakh and kazakh >= uzbek:
        return "kk"
    if uzbek or any(ch in _SHARED_KK_UZ for ch in low):
        # Kazakh prose without any of ә ң ө ұ ү һ і is all but impossible; Uzbek uses қ ғ freely.
        return "uz"
    words = _WORD.findall(low)
    ru = sum(w in _CYRILLIC_STOPWORDS["ru"] for w in words)
    uz = sum(w in _CYRILLIC_STOPWORDS["uz"] for w in words)
    return "uz" if uz > ru else "ru"


def _detect_latin(low: str) -> str:
    if "ə" in low:
        return "az"  # the one letter no other language here writes
    scores = dict.fromkeys(_LATIN_ORDER, 0.0)
    for ch in low:
        for language, weight in _LATIN_LETTERS.get(ch, {}).items():
            scores[language] += weight
    words = _WORD.findall("".join("'" if ch in _APOSTROPHES else ch for ch in low))
    for word in words:
        for language, stopwords in _LATIN_STOPWORDS.items():
            if word in stopwords:
                scores[language] += 1
        if _UZBEK_APOSTROPHE_WORD.fullmatch(word) and word != "o'clock":
            scores["uz"] += 2  # o' and g' are Uzbek letters
        if _TURKISH_PROGRESSIVE.match(word):
            scores["tr"] += 1
        if _AZERBAIJANI_VERB.match(word):
            scores["az"] += 1
        if "x" in word or "q" in word:
            # Azerbaijani and Uzbek write x and q; Turkish has neither letter
            scores["az"] += 0.5
            scores["uz"] += 0.5
    best = max(_LATIN_ORDER, key=lambda language: (scores[language], -_LATIN_ORDER.index(language)))
    return best if scores[best] > 0 else "en"


def detect_reply_language(text: str) -> str:
    """Guess the language a draft is written in; one of :data:`LANGUAGES`, ``"en"`` when unsure.

    Script first: the non-Latin script with the most letters wins when it has at least half as many
    letters as Latin (English product names and acronyms inside a Russian reply don't flip it).
    Georgian is ``ka`` and Armenian ``hy``. Cyrillic is ``kk`` when it has letters only Kazakh writes
    (ә ң ө ұ ү һ і), ``uz`` when it has ў ҳ or қ ғ without those, else ``uz`` or ``ru`` by common words.
    Latin is ``az`` when it has ``ə``; otherwise each language scores its letters (ñ ¿ ¡ for Spanish,
    ß ä for German, è ê à ... for French, ı ğ ş for Turkish and Azerbaijani), its common words,
    Uzbek o'/g' words, Turkish ``-yor`` and Azerbaijani ``-irik/-ırıq`` verbs, words with x or q
    (Azerbaijani and Uzbek, never Turkish); the best score wins,
    ties go to English, then Turkish.
    """
    counts = _script_counts(text)
    script = max(("ka", "hy", "cyrl"), key=lambda s: counts[s])
    low = "".join(ch.lower()[0] for ch in text)
    if counts[script] and counts[script] * 2 >= counts["latn"]:
        return _detect_cyrillic(low) if script == "cyrl" else script
    if not counts["latn"]:
        return "en"
    return _detect_latin(low)


# --------------------------------------------------------------------------------------------------
# The checks

# Upper-case words that are names of things, not shouting.
_ACRONYMS = frozenset(
    "SMS PDF VIP FAQ API URL CSV USB GPS ATM PIN IBAN SWIFT GDPR HTML HTTP HTTPS ASAP CEO CSM SLA ETA OK ID "
    "EU UK USA USD EUR GBP RUB KZT TRY AZN UZS GEL AMD IT TV PC NFC QR IOS VAT DHL UPS FAQS PS "
    "СМС ИНН ООО ИП РФ ПИН НДС ЕС".split())
_EXCLAMATION_RUN = re.compile(r"[!！](?:[?？]*[!！])+")
_WORD_TOKEN = re.compile(r"\w+")
_CAPS_RUN_GAP = re.compile(r"[ \t,\-–—']*")
_SHOUTING_LETTERS = 4
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…։])\s+|\n+")
_ENUMERATED_ITEM = re.compile(r"^[ \t]*(?:\d{1,2}[.)]|[a-zа-я]\)|[-*•–—])[ \t]+\S", re.MULTILINE)
_INLINE_ITEM = re.compile(r"(?<!\S)\(?[1-9]\)\s")


def _shouting(text: str) -> list[tuple[int, int]]:
    """Runs of two or more "!", and runs of upper-case words with 4+ letters in all ("VERY", "DO NOT").

    A word counts when it has two or more letters, all upper-case, and is not a known acronym; words
    in a run are separated by spaces, commas, hyphens or apostrophes only. Georgian Mkhedruli has no
    case, so it never shouts.
    """
    spans = [(m.start(), m.end()) for m in _EXCLAMATION_RUN.finditer(text)]
    run: list[int] = []  # start, end, letters of the current run of capitals

    def close_run() -> None:
        if run and run[2] >= _SHOUTING_LETTERS:
            spans.append((run[0], run[1]))
        run.clear()

    for match in _WORD_TOKEN.finditer(text):
        word = match.group()
        if len(word) >= 2 and word.isalpha() and word.isupper() and word not in _ACRONYMS:
            if run and _CAPS_RUN_GAP.fullmatch(text, run[1], match.start()):
                run[1], run[2] = match.end(), run[2] + len(word)
            else:
                close_run()
                run.extend((match.start(), match.end(), len(word)))
        else:
            close_run()
    close_run()
    return spans


def _offers_two_options(text: str, folded: str, rules: _Rules) -> bool:
    """At least two enumerated items, or one sentence that makes an offer and joins alternatives.

    Items are lines starting "1)", "2.", "a)", "- ", "* ", "• ", or inline "1) ... 2) ...". An offering
    sentence has an offer word ("we can", "would you prefer", "podemos", "можем") and an alternative
    word ("or", "either", "alternatively", "или", "veya", "və ya", "немесе", "ან", "կամ" ...).
    A heuristic: "questions or concerns" in a "you can reach us" sentence counts too.
    """
    if max(len(_ENUMERATED_ITEM.findall(text)), len(_INLINE_ITEM.findall(text))) >= 2:
        return True
    return any(rules.offers.search(sentence) and rules.alternatives.search(sentence)
               for sentence in _SENTENCE_BREAK.split(folded))


def _normalise_language(language: str) -> str:
    primary = language.strip().lower().replace("_", "-").split("-")[0]
    if primary not in LANGUAGES:
        raise ValueError(f"unsupported reply language {language!r}; expected one of {', '.join(LANGUAGES)}")
    return primary


def _finding(code: str, start: int, end: int) -> Finding:
    return Finding(code=code, start=start, end=end, hint=HINTS[code])


def check_reply(text: str, language: str | None = None) -> ReplyCheck:
    """Lint a CSM's draft reply; the findings are sorted by ``(start, end, code)``.

    Args:
        text: the draft as the CSM typed it.
        language: the draft's language (``"ru"``, ``"pt-BR"``-style tags are cut to their first part);
            detected with :func:`detect_reply_language` when ``None``. Its patterns apply plus English.

    Raises:
        ValueError: ``language`` is not one of :data:`LANGUAGES`.
    """
    lang = detect_reply_language(text) if language is None else _normalise_language(language)
    rules = _RULES[lang]
    folded = _fold(text)
    findings = [_finding(code, m.start(), m.end())
                for code, pattern in (("calm_down", rules.calm_down), ("blame", rules.blame))
                for m in pattern.finditer(folded)]
    findings += [_finding("shouting", start, end) for start, end in _shouting(text)]

    end = len(text)
    if not rules.apology.search(folded):
        findings.append(_finding("no_apology", end, end))
    if not _offers_two_options(text, folded, rules):
        findings.append(_finding("single_option", end, end))
    if not rules.date_time.search(folded):
        findings.append(_finding("no_date_time", end, end))

    first_acknowledgement = rules.acknowledgement.search(folded)
    acknowledged_at = first_acknowledgement.start() if first_acknowledgement else end + 1
    findings += [_finding("policy_first", m.start(), m.end())
                 for m in rules.policy.finditer(folded) if m.start() < acknowledged_at]

    findings.sort(key=lambda f: (f.start, f.end, f.code))
    return ReplyCheck(language=lang, findings=findings)
