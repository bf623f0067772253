"""What the scoring stage publishes about an item: its survey scores, touch point and journey stage travel
onto the scored event, and a suggestion also goes to the product team's topic (SEN-7)."""

from __future__ import annotations

import pytest

from feedback_shared.events import FeedbackReceived, NeedScore, SentimentResult, SurveyScores
from feedback_shared.topics import FEEDBACK_SCORED
from sentiment.agents import is_suggestion, scored_event
from sentiment.model import Scored
from sentiment.scoring import LanguageGuess


def result(label: str = "negative") -> Scored:
    probabilities = {"negative": 0.1, "neutral": 0.1, "positive": 0.1} | {label: 0.8}
    return Scored(
        language=LanguageGuess(code="ka", confidence=0.97, reliable=True),
        sentiment=SentimentResult(label=label, score=probabilities["positive"] - probabilities["negative"],  # type: ignore[arg-type]
                                  probabilities=probabilities, confidence=0.8),  # type: ignore[arg-type]
        needs=[NeedScore(need="empathy", score=0.7, sentiment="negative")], urgency=0.4, anger=0.6,
    )


def received(kind: str = "survey", text: str = "კონსულტანტი უხეში იყო.") -> FeedbackReceived:
    return FeedbackReceived(
        source="survey", kind=kind, external_id="r-1", customer_id="c-1", text=text,  # type: ignore[arg-type]
        touch_point="consultants", journey_stage="purchase", order_id="o-1",
        survey=SurveyScores(survey_id="nps-q4", nps=2, csat=1, questions={"visits": 3}) if kind == "survey" else None,
    )


def test_survey_scores_touch_point_and_journey_stage_travel_onto_the_scored_event() -> None:
    item = received()
    scored = scored_event(item, result(), "model-1")
    assert scored.survey == item.survey and scored.survey is not None and scored.survey.nps == 2
    assert (scored.touch_point, scored.journey_stage) == ("consultants", "purchase")
    assert (scored.kind, scored.order_id, scored.customer_id) == ("survey", "o-1", "c-1")
    assert scored.feedback_event_id == item.event_id and scored.event_id != item.event_id
    assert scored.language == "ka" and scored.sentiment.label == "negative"
    # And they survive the wire: the scored topic's consumers read them back.
    again = FEEDBACK_SCORED.decode(FEEDBACK_SCORED.encode(scored))
    assert again.survey == scored.survey and again.touch_point == "consultants"


@pytest.mark.parametrize(("kind", "text", "label", "expected"), [
    ("suggestion", "Open on Sundays.", "neutral", True),           # sent as one
    ("suggestion", "Your prices are awful, lower them.", "negative", True),
    ("review", "It would be nice to have a dark mode.", "neutral", True),  # read as one
    ("review", "Great shop, thanks!", "positive", False),
    ("survey", "კონსულტანტი უხეში იყო.", "negative", False),
])
def test_suggestions_go_to_the_product_team_whether_sent_or_read_as_one(
    kind: str, text: str, label: str, expected: bool
) -> None:
    scored = scored_event(received(kind, text), result(label), "model-1")
    assert is_suggestion(scored) is expected
    assert (scored.feedback_type == "suggestion") is (expected or kind == "suggestion")
