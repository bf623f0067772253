from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from feedback_shared.errors import DecodeError
from feedback_shared.events import (
    NEEDS,
    PRODUCT_NEEDS,
    SERVICE_NEEDS,
    FeedbackReceived,
    OrderReturned,
    PurchaseRecorded,
    SurveyAnswered,
    SurveyScores,
)
from feedback_shared.topics import (
    ALL_TOPICS,
    COMMERCE_EVENTS,
    FEEDBACK_RECEIVED,
    SURVEY_ANSWERS,
    all_topic_names,
)


def review(**overrides: object) -> FeedbackReceived:
    fields: dict[str, object] = {
        "source": "google", "kind": "review", "external_id": "r-1", "text": "Ça ne marche pas", "customer_id": "c-1",
    }
    fields.update(overrides)
    return FeedbackReceived(**fields)  # type: ignore[arg-type]


def test_sixteen_needs_nine_product_seven_service() -> None:
    assert len(PRODUCT_NEEDS) == 9
    assert len(SERVICE_NEEDS) == 7
    assert len(set(NEEDS)) == 16


def test_every_topic_has_a_dlq_twin_and_names_are_unique() -> None:
    names = all_topic_names()
    assert len(names) == len(set(names)) == 2 * len(ALL_TOPICS)
    for spec in ALL_TOPICS:
        assert spec.dlq_name == spec.name + ".dlq"
        assert spec.name.endswith(".v1")


def test_feedback_round_trips_through_the_registry() -> None:
    event = review()
    decoded = FEEDBACK_RECEIVED.decode(FEEDBACK_RECEIVED.encode(event))
    assert decoded == event
    assert decoded.text == "Ça ne marche pas"
    assert FEEDBACK_RECEIVED.key(event) == b"c-1"


def test_key_falls_back_to_author_then_source_id() -> None:
    assert FEEDBACK_RECEIVED.key(review(customer_id=None, author="@nino")) == b"@nino"
    assert FEEDBACK_RECEIVED.key(review(customer_id=None, author=None)) == b"google:r-1"


def test_unknown_fields_are_tolerated() -> None:
    raw = json.loads(FEEDBACK_RECEIVED.encode(review()))
    raw["added_in_a_later_release"] = {"x": 1}
    decoded = FEEDBACK_RECEIVED.decode(json.dumps(raw).encode())
    assert decoded.external_id == "r-1"


def test_datetimes_are_aware_utc() -> None:
    event = review(occurred_at=datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=4))))
    assert event.occurred_at == datetime(2026, 1, 1, 8, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="timezone"):
        review(occurred_at=datetime(2026, 1, 1, 12))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json at all", "Invalid JSON"),
        (b'{"source": "google"}', "kind"),
        (None, "empty message"),
    ],
)
def test_decode_errors_name_the_problem(raw: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        FEEDBACK_RECEIVED.decode(raw)
    assert reason in info.value.reason
    assert info.value.topic == "feedback.received.v1"


def test_decode_error_does_not_echo_the_input() -> None:
    raw = json.dumps({"source": "google", "kind": "review", "external_id": "x", "text": "",
                      "author": "jane@example.com"}).encode()
    with pytest.raises(DecodeError) as info:
        FEEDBACK_RECEIVED.decode(raw)
    assert "text" in info.value.reason
    assert "jane@example.com" not in info.value.reason


def test_commerce_topic_decodes_both_event_types() -> None:
    purchase = PurchaseRecorded(order_id="o-1", customer_id="c-1", amount=Decimal("12.50"), currency="EUR")
    returned = OrderReturned(order_id="o-1", customer_id="c-1", amount=Decimal("12.50"), currency="EUR")
    assert isinstance(COMMERCE_EVENTS.decode(COMMERCE_EVENTS.encode(purchase)), PurchaseRecorded)
    decoded = COMMERCE_EVENTS.decode(COMMERCE_EVENTS.encode(returned))
    assert isinstance(decoded, OrderReturned)
    assert decoded.amount == Decimal("12.50")
    assert isinstance(decoded.event_id, uuid.UUID)


def test_a_survey_answer_carries_expected_and_perceived_and_their_gap() -> None:
    answer = SurveyAnswered(external_id="s-1", survey=SurveyScores(survey_id="sur3", expected=5, perceived=2))
    decoded = SURVEY_ANSWERS.decode(SURVEY_ANSWERS.encode(answer))
    assert isinstance(decoded, SurveyAnswered)
    assert (decoded.survey.expected, decoded.survey.perceived) == (5, 2)
    assert decoded.survey.expectation_gap == -3
    # Only one of the two rated: no gap to speak of.
    assert SurveyScores(survey_id="sur3", perceived=4).expectation_gap is None


def test_an_answer_written_before_expected_and_perceived_existed_still_decodes() -> None:
    raw = json.loads(SURVEY_ANSWERS.encode(SurveyAnswered(external_id="s-1", survey=SurveyScores(survey_id="x", nps=3))))
    del raw["survey"]["expected"], raw["survey"]["perceived"]
    decoded = SURVEY_ANSWERS.decode(json.dumps(raw).encode())
    assert isinstance(decoded, SurveyAnswered)
    assert decoded.survey.expected is None and decoded.survey.expectation_gap is None


@pytest.mark.parametrize("field", ["expected", "perceived"])
@pytest.mark.parametrize("value", [0, 6])
def test_expected_and_perceived_are_one_to_five(field: str, value: int) -> None:
    with pytest.raises(ValueError):
        SurveyScores(survey_id="sur3", **{field: value})  # type: ignore[arg-type]
