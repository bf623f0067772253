"""A survey answer with text reaches loyalty as scored feedback like a review, and earns the feedback bonus
under the same rule: once, for an order the customer bought."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client import CollectorRegistry

from feedback_shared.events import FeedbackScored, PurchaseRecorded, SentimentResult, SurveyScores
from loyalty.metrics import LoyaltyMetrics
from loyalty.points import PointsRules
from loyalty.service import LoyaltyService
from tests.unit.loyalty.fakes import FakeLoyaltyStore

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def survey_answer(order_id: str) -> FeedbackScored:
    return FeedbackScored(
        source="survey", kind="survey", external_id="resp-1", customer_id="c-1", order_id=order_id,
        text="The consultant was rude.", touch_point="consultants", journey_stage="purchase",
        survey=SurveyScores(survey_id="nps-q4", nps=2, csat=1),
        feedback_event_id=uuid.uuid4(), model_version="t", language="en",
        sentiment=SentimentResult(label="negative", score=-0.8, confidence=0.9,
                                  probabilities={"negative": 0.85, "neutral": 0.1, "positive": 0.05}),
    )


def test_a_survey_answer_about_a_bought_order_earns_the_review_bonus_once() -> None:
    store = FakeLoyaltyStore()
    svc = LoyaltyService(store, PointsRules(surprise_probability=0), LoyaltyMetrics.create(CollectorRegistry()),
                         clock=lambda: T0)
    svc.on_commerce(PurchaseRecorded(order_id="o-1", customer_id="c-1", amount=Decimal("10"), currency="EUR",
                                     occurred_at=T0))
    answer = survey_answer("o-1")
    svc.on_scored(answer)
    svc.on_scored(answer)  # redelivered
    bonuses = [e for e in store.ledger.entries_by_id.values() if e.rule == "review_bonus"]
    assert len(bonuses) == 1 and bonuses[0].points == 25
    assert store.balance("c-1") == 25 == store.ledger_sum("c-1")


def test_a_survey_answer_about_an_order_not_bought_earns_nothing_yet() -> None:
    store = FakeLoyaltyStore()
    svc = LoyaltyService(store, PointsRules(surprise_probability=0), LoyaltyMetrics.create(CollectorRegistry()),
                         clock=lambda: T0)
    svc.on_scored(survey_answer("o-unknown"))
    assert store.balance("c-1") == 0 and store.ledger.entries_by_id == {}
