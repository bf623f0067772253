from __future__ import annotations

import numpy as np
import pytest

from feedback_shared.events import NEEDS
from sentiment.scoring import (
    LanguageGuess,
    anger_score,
    combine_probabilities,
    needs_from_probabilities,
    sentiment_from_probabilities,
    top_needs,
    urgency_score,
)

EN = LanguageGuess("en", 0.99, True)


def test_label_score_and_confidence_follow_the_probabilities() -> None:
    result = sentiment_from_probabilities([0.8, 0.15, 0.05], text="it broke after two days", language=EN)
    assert result.label == "negative"
    assert result.score == pytest.approx(-0.75)
    assert result.confidence == pytest.approx(0.8)
    assert result.low_confidence is False
    assert sum(result.probabilities.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("probabilities", "text", "language", "reason"),
    [
        ([0.8, 0.1, 0.1], "it broke after two days", LanguageGuess("sw", 0.99, True), "language_not_validated"),
        ([0.8, 0.1, 0.1], "it broke after two days", LanguageGuess("en", 0.4, False), "language_detection_unreliable"),
        ([0.8, 0.1, 0.1], "broken", EN, "short_text"),
        ([0.45, 0.3, 0.25], "it broke after two days", EN, "weak_evidence"),
        ([0.5, 0.0, 0.5], "great phone, awful battery", EN, "conflicting_evidence"),
    ],
)
def test_low_confidence_reasons(probabilities: list[float], text: str, language: LanguageGuess, reason: str) -> None:
    result = sentiment_from_probabilities(probabilities, text=text, language=language)
    assert result.low_confidence is True
    assert reason in result.low_confidence_reasons


def test_top_needs_picks_what_stands_out_and_at_most_three() -> None:
    sims = [0.80] * len(NEEDS)
    sims[NEEDS.index("reliability")] = 0.90
    sims[NEEDS.index("accessibility")] = 0.88
    needs = top_needs(sims)
    assert [n.need for n in needs] == ["reliability", "accessibility"]
    assert all(0.0 <= n.score <= 1.0 for n in needs)
    assert top_needs([0.8] * len(NEEDS)) == []
    assert len(top_needs([float(i) for i in range(16)], min_z=0.0)) == 3
    with pytest.raises(ValueError, match="16"):
        top_needs([0.1, 0.2])


def test_anger_and_urgency_rise_with_markers_and_negativity() -> None:
    calm = anger_score("The parcel arrived a day late.", 0.6)
    angry = anger_score("This is UNACCEPTABLE, worst service ever!!!", 0.95)
    russian = anger_score("Это возмутительно, худший магазин!", 0.9)
    assert calm < 0.2 < angry
    assert russian > calm
    assert urgency_score("Please refund me immediately", 0.9, 0.3) > urgency_score("Nice shop", 0.05, 0.0)


def test_combine_probabilities_weights_heads_and_moves_the_neutral_band() -> None:
    a = [[0.6, 0.2, 0.2]]
    b = [[0.2, 0.2, 0.6]]
    mixed = combine_probabilities([a, b], [0.75, 0.25])
    assert mixed[0] == pytest.approx([0.5, 0.2, 0.3])
    shifted = combine_probabilities([a, b], [0.75, 0.25], neutral_log_bias=float(np.log(3.0)))
    assert shifted[0] == pytest.approx(np.array([0.5, 0.6, 0.3]) / 1.4)
    assert shifted.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one weight per head"):
        combine_probabilities([a, b], [1.0])


def test_needs_from_probabilities_top_need_needs_less_evidence_and_at_most_three() -> None:
    p = [0.0] * len(NEEDS)
    p[NEEDS.index("price")] = 0.5
    p[NEEDS.index("fairness")] = 0.45
    assert [n.need for n in needs_from_probabilities(p, threshold=0.4)] == ["price", "fairness"]
    # With a higher threshold for a second need, only the first passes.
    assert [n.need for n in needs_from_probabilities(p, threshold=0.8, top_threshold=0.4)] == ["price"]
    assert needs_from_probabilities(p, threshold=0.8, top_threshold=0.6) == []
    many = [0.9] * len(NEEDS)
    assert len(needs_from_probabilities(many, threshold=0.5)) == 3
    assert needs_from_probabilities(p, threshold=0.4)[0].score == 0.5
    with pytest.raises(ValueError, match="16"):
        needs_from_probabilities([0.5], threshold=0.4)


def test_needs_from_probabilities_with_a_threshold_per_need() -> None:
    """A text about price and rudeness gets both needs when each reaches its own threshold."""
    p = [0.05] * len(NEEDS)
    p[NEEDS.index("price")] = 0.7
    p[NEEDS.index("empathy")] = 0.35
    p[NEEDS.index("fairness")] = 0.4
    thresholds = [0.5] * len(NEEDS)
    thresholds[NEEDS.index("empathy")] = 0.3
    needs = needs_from_probabilities(p, threshold=thresholds, sentiment="negative")
    assert [n.need for n in needs] == ["price", "empathy"]  # fairness (0.4) is below its 0.5
    assert {n.sentiment for n in needs} == {"negative"}
    assert needs_from_probabilities(p, threshold=thresholds)[0].sentiment == "neutral"
    with pytest.raises(ValueError):
        needs_from_probabilities(p, threshold=[0.5, 0.5])


@pytest.mark.parametrize(
    ("text", "label", "kind", "expected"),
    [
        ("Why is my order still not here?!", "negative", "review", "complaint"),
        ("It would be nice to have a dark mode.", "neutral", "review", "suggestion"),
        ("Было бы здорово добавить оплату картой Мир.", "positive", "mention", "suggestion"),
        ("Tətbiqə qaranlıq rejim əlavə edin, zəhmət olmasa.", "neutral", None, "suggestion"),
        ("¿Tienen esta chaqueta en talla M?", "neutral", "mention", "question"),
        ("Ունե՞ք այս մոդելը սև գույնով:", "neutral", None, "question"),
        ("Rahmat, hammasi zo'r!", "positive", "review", "praise"),
        ("Die Bestellung kam am Dienstag.", "neutral", "review", "comment"),
        ("Add PayPal please", "neutral", "suggestion", "suggestion"),
    ],
)
def test_feedback_type(text: str, label: str, kind: str | None, expected: str) -> None:
    from sentiment.scoring import feedback_type

    assert feedback_type(text, label, kind) == expected


def test_need_scores_from_before_per_need_sentiment_still_validate() -> None:
    """Events written before each need had its own polarity read as neutral needs; new ones carry it."""
    from feedback_shared.events import NeedScore

    old = NeedScore.model_validate({"need": "price", "score": 0.5})
    assert old.sentiment == "neutral"
    assert NeedScore.model_validate({"need": "price", "score": 0.5, "sentiment": "negative"}).sentiment == "negative"
    with pytest.raises(ValueError):
        NeedScore.model_validate({"need": "price", "score": 0.5, "sentiment": "furious"})
