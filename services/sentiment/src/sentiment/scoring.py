"""Pure scoring decisions: from head probabilities, similarities and the text to a result.

No model, no I/O: the embedding and the heads live in ``model.py``. Everything here is deterministic and
unit-tested without loading the model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from feedback_shared.events import NEEDS, NeedScore, SentimentLabel, SentimentResult

LABELS: tuple[SentimentLabel, SentimentLabel, SentimentLabel] = ("negative", "neutral", "positive")

#: Languages the scorer has been checked on; anything else is scored but marked low-confidence.
VALIDATED_LANGUAGES = frozenset({"en", "ru", "es", "de", "fr", "tr", "az", "kk", "uz", "ka", "hy"})

MIN_WORDS = 3
WEAK_EVIDENCE_BELOW = 0.55
CONFLICT_BOTH_ABOVE = 0.3


@dataclass(frozen=True)
class LanguageGuess:
    code: str | None
    confidence: float
    reliable: bool


def word_count(text: str) -> int:
    return len(re.findall(r"\w+", text))


def sentiment_from_probabilities(
    probabilities: Sequence[float], *, text: str, language: LanguageGuess
) -> SentimentResult:
    """Label, score, confidence and honest low-confidence reasons from [neg, neutral, pos]."""
    p = np.asarray(probabilities, dtype=float)
    p = p / p.sum()
    label = LABELS[int(p.argmax())]
    reasons: list[str] = []
    if language.code not in VALIDATED_LANGUAGES:
        reasons.append("language_not_validated")
    if not language.reliable:
        reasons.append("language_detection_unreliable")
    if word_count(text) < MIN_WORDS:
        reasons.append("short_text")
    if float(p.max()) < WEAK_EVIDENCE_BELOW:
        reasons.append("weak_evidence")
    if p[0] > CONFLICT_BOTH_ABOVE and p[2] > CONFLICT_BOTH_ABOVE:
        reasons.append("conflicting_evidence")
    return SentimentResult(
        label=label,
        score=float(np.clip(p[2] - p[0], -1.0, 1.0)),
        probabilities={name: round(float(v), 6) for name, v in zip(LABELS, p, strict=True)},
        confidence=float(p.max()),
        low_confidence=bool(reasons),
        low_confidence_reasons=reasons,
    )


def top_needs(similarities: Sequence[float], *, max_needs: int = 3, min_z: float = 1.6) -> list[NeedScore]:
    """The needs whose prototype similarity stands out from the other needs' (z-score over 16)."""
    sims = np.asarray(similarities, dtype=float)
    if sims.shape != (len(NEEDS),):
        raise ValueError(f"expected {len(NEEDS)} similarities, got {sims.shape}")
    spread = float(sims.std()) or 1e-9
    z = (sims - float(sims.mean())) / spread
    order = np.argsort(-z)
    chosen = [i for i in order[:max_needs] if z[i] >= min_z]
    return [
        NeedScore(need=NEEDS[i], score=round(float(1.0 / (1.0 + np.exp(-(z[i] - min_z)))), 4))  # type: ignore[arg-type]
        for i in chosen
    ]


def combine_probabilities(
    head_probabilities: Sequence[npt.ArrayLike], weights: Sequence[float], *, neutral_log_bias: float = 0.0
) -> npt.NDArray[np.float64]:
    """Weighted mean of several heads' (n, 3) [neg, neutral, pos] probabilities, then the neutral class
    scaled by ``exp(neutral_log_bias)`` and rows renormalised. The bias moves the neutral band: the heads
    disagree most about where "mildly negative" ends and "neutral" begins, so it is calibrated by CV.
    """
    if len(head_probabilities) != len(weights) or not head_probabilities:
        raise ValueError("one weight per head, and at least one head")
    arrays = [np.atleast_2d(np.asarray(p, dtype=np.float64)) for p in head_probabilities]
    mixed = sum((w * p for w, p in zip(weights, arrays, strict=True)), np.zeros_like(arrays[0]))
    mixed = mixed * np.exp(np.array([0.0, neutral_log_bias, 0.0]))
    return np.asarray(mixed / mixed.sum(axis=1, keepdims=True), dtype=np.float64)


def need_ranks(scores: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Each need's rank in its row (0 for the most likely; ties keep the NEEDS order)."""
    s = np.asarray(scores, dtype=float)
    return np.argsort(np.argsort(-s, axis=-1, kind="stable"), axis=-1, kind="stable")


def needs_mask(scores: npt.ArrayLike, threshold: npt.ArrayLike, *, top_threshold: float | None = None,
               max_needs: int = 3, ranks: npt.NDArray[np.intp] | None = None) -> npt.NDArray[np.bool_]:
    """The needs decision rule on a matrix of texts by needs (or one row): of each row's ``max_needs``
    highest needs, those that reach their threshold (one number, or one per need in NEEDS order); with
    ``top_threshold``, the most likely need from that threshold instead. Training chooses the thresholds
    with this very function, on whole matrices (``ranks``, when given, are ``need_ranks(scores)``: they do
    not depend on the thresholds, so a threshold search computes them once)."""
    s = np.asarray(scores, dtype=float)
    r = need_ranks(s) if ranks is None else ranks
    own = s >= np.broadcast_to(np.asarray(threshold, dtype=float), s.shape[-1:])
    if top_threshold is not None:
        own = np.where(r == 0, s >= top_threshold, own)
    return np.asarray((r < max_needs) & own, dtype=bool)


def needs_from_probabilities(
    probabilities: Sequence[float], *, threshold: npt.ArrayLike, top_threshold: float | None = None,
    max_needs: int = 3, sentiment: SentimentLabel = "neutral",
) -> list[NeedScore]:
    """The needs a text is about, highest first (``needs_mask`` on one text). Each need's probabilities are
    calibrated separately, and its threshold chosen by cross-validation on train.jsonl. Each need is returned
    with ``sentiment`` (the text's overall label, unless the caller knows the need's own).
    """
    p = np.asarray(probabilities, dtype=float)
    if p.shape != (len(NEEDS),):
        raise ValueError(f"expected {len(NEEDS)} probabilities, got {p.shape}")
    kept = needs_mask(p, np.broadcast_to(np.asarray(threshold, dtype=float), p.shape),
                      top_threshold=top_threshold, max_needs=max_needs)
    return [
        NeedScore(need=NEEDS[i], score=round(float(p[i]), 4), sentiment=sentiment)  # type: ignore[arg-type]
        for i in np.argsort(-p, kind="stable") if kept[i]
    ]


# Anger and urgency markers, in the validated languages. A marker raises the score; a negative label
# raises it further. Lower-cased substring match, so inflected forms in agglutinative languages match.
ANGER_MARKERS = (
    "furious", "angry", "outraged", "disgusting", "unacceptable", "scam", "worst", "never again",
    "ridiculous", "terrible", "awful", "hate",
    "бесит", "возмутительно", "ужас", "отврат", "безобраз", "худш", "никогда больше", "обман",
    "indignante", "inaceptable", "estafa", "horrible", "peor", "nunca más",
    "unverschämt", "inakzeptabel", "betrug", "schrecklich", "nie wieder", "wütend",
    "inadmissible", "arnaque", "scandaleux", "honteux", "furieux", "jamais plus",
    "rezalet", "berbat", "kabul edilemez", "dolandırıcı", "asla", "nefret",
    "biabırçı", "dəhşət", "rəzalət", "fırıldaq", "heç vaxt",
    "сұмдық", "масқара", "алаяқ", "ешқашан", "жиіркенішті",
    "dahshat", "jirkanch", "firibgar", "hech qachon", "sharmandalik",
    "საშინელ", "სირცხვილ", "თაღლით", "არასდროს",
    "սարսափելի", "խայտառակ", "խաբեբա", "երբեք",
)
URGENCY_MARKERS = (
    "urgent", "asap", "immediately", "right now", "today", "still waiting", "refund", "lawyer", "cancel",
    "срочно", "немедленно", "до сих пор", "верните деньги", "юрист", "отмен",
    "urgente", "inmediatamente", "reembolso", "abogado",
    "dringend", "sofort", "erstattung", "anwalt",
    "immédiatement", "remboursement", "avocat",
    "acil", "hemen", "iade", "avukat",
    "təcili", "dərhal", "pulumu qaytarın",
    "шұғыл", "дереу", "ақшамды қайтарыңыз",
    "zudlik", "darhol", "pulimni qaytaring",
    "სასწრაფოდ", "დაუყოვნებლივ", "დამიბრუნეთ",
    "շտապ", "անմիջապես", "վերադարձրեք",
)


def _marker_hits(text: str, markers: Sequence[str]) -> int:
    lowered = text.lower()
    return sum(1 for m in markers if m in lowered)


def anger_score(text: str, negative_probability: float) -> float:
    hits = _marker_hits(text, ANGER_MARKERS)
    exclaims = min(text.count("!"), 3)
    letters = [c for c in text if c.isalpha()]
    shouting = len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.6
    raw = 0.25 * min(hits, 2) + 0.1 * exclaims + (0.2 if shouting else 0.0)
    return round(float(min(1.0, raw * (0.5 + negative_probability))), 4)


def urgency_score(text: str, negative_probability: float, anger: float) -> float:
    hits = _marker_hits(text, URGENCY_MARKERS)
    raw = 0.35 * min(hits, 2) + 0.3 * anger
    return round(float(min(1.0, raw * (0.5 + negative_probability))), 4)


FeedbackType = Literal["complaint", "suggestion", "question", "praise", "comment"]

#: Phrases that propose a change, in the validated languages (lower-case substrings).
SUGGESTION_MARKERS = (
    "would be nice", "would be great", "please add", "i suggest", "you should", "it would help", "wish you",
    "было бы", "хорошо бы", "добавьте", "предлагаю", "сделайте",
    "sería genial", "sería bueno", "deberían", "podrían añadir", "sugiero",
    "wäre schön", "wäre toll", "bitte fügt", "ich schlage vor", "ihr solltet",
    "ce serait bien", "il faudrait", "vous devriez", "je suggère", "pourriez-vous ajouter",
    "olsa iyi olur", "keşke", "eklerseniz", "öneriyorum",
    "olsa yaxşı olardı", "əlavə edin", "təklif edirəm",
    "болса жақсы", "қосыңыздар", "ұсынамын",
    "bo'lsa yaxshi", "qo'shsangiz", "taklif qilaman",
    "კარგი იქნებოდა", "დაამატეთ", "გთავაზობთ",
    "լավ կլիներ", "ավելացրեք", "առաջարկում եմ",
)
QUESTION_MARKS = ("?", "¿", "՞", "؟")


def feedback_type(text: str, label: str, kind: str | None = None) -> FeedbackType:
    """Complaint, suggestion, question or praise (seed 001/004: suggestions and criticism are answered
    differently); "comment" when none fits. A negative item is a complaint even when phrased as a
    question ("why is my order still not here?"): it needs the complaint's answer."""
    if kind == "suggestion":
        return "suggestion"
    lowered = text.lower()
    if label == "negative" or kind == "complaint":
        return "complaint"
    if any(marker in lowered for marker in SUGGESTION_MARKERS):
        return "suggestion"
    if any(mark in text for mark in QUESTION_MARKS):
        return "question"
    if label == "positive":
        return "praise"
    return "comment"
