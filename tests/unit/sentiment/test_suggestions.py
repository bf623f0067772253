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


def test_a_later_batch_scored_first_is_published_after_the_earlier_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """With two batches in flight (the default), the second may finish scoring first; its events still
    go to the producer after the first batch's, and the agent is registered with the setting."""
    import asyncio
    import threading
    from typing import Any

    from prometheus_client import CollectorRegistry

    import sentiment.agents as agents
    from sentiment.config import Settings
    from sentiment.metrics import SentimentMetrics

    captured: dict[str, Any] = {}
    published: list[str] = []

    def capture(app: Any, spec: Any, name: str, handler: Any, dlq: Any, **kwargs: Any) -> None:
        captured[name] = (handler, kwargs)

    class FakeSink:
        def __init__(self, app: Any, spec: Any) -> None:
            self.spec = spec

        async def enqueue(self, events: list[Any]) -> list[asyncio.Future[None]]:
            published.extend(e.external_id for e in events if self.spec is FEEDBACK_SCORED)
            if any(e.external_id.startswith("second") for e in events):
                first_may_finish.set()
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return [done]

    first_may_finish = threading.Event()

    class SlowFirstModel:
        version = "test-model"

        def score(self, texts: list[str], languages: list[str | None]) -> list[Scored]:
            if texts[0].startswith("first"):
                # Still scoring until the second batch is published, or for 0.3 s: the second batch is
                # done first either way, and without the turns it would be published first.
                first_may_finish.wait(0.3)
            return [result("positive") for _ in texts]

    monkeypatch.setattr(agents, "register_batch_agent", capture)
    monkeypatch.setattr(agents, "register_agent", lambda *_, **__: None)
    monkeypatch.setattr(agents, "EventSink", FakeSink)
    agents.register_agents(object(), Settings(), SlowFirstModel(),  # type: ignore[arg-type]
                            SentimentMetrics.create(CollectorRegistry()))  # type: ignore[arg-type]
    handler, kwargs = captured["sentiment.score_feedback"]
    assert kwargs["in_flight"] == 2

    def batch(name: str) -> list[FeedbackReceived]:
        return [received("review", f"{name} text").model_copy(update={"external_id": f"{name}-{i}"}) for i in range(2)]

    async def scenario() -> None:
        await asyncio.gather(handler(batch("first")), handler(batch("second")))

    asyncio.run(scenario())
    assert published == ["first-0", "first-1", "second-0", "second-1"]
