from __future__ import annotations

import pytest

from feedback_shared.events import NEEDS
from sentiment.scoring import (
    LanguageGuess,
    anger_score,
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
