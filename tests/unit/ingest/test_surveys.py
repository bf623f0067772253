"""Survey answers and suggestions in: what they become on the topics, when a resend is a duplicate, who may
write them, the batch, webhook and file-import paths, and the NPS/CSAT/touch point metrics."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from feedback_shared.events import FeedbackReceived, SurveyAnswered
from feedback_shared.topics import FEEDBACK_RECEIVED, SURVEY_ANSWERS
from feedback_shared.webhooks import signed_headers
from feedback_tools.importer import to_item
from ingest.config import Settings
from ingest.main import create_app
from tests.unit.ingest.fakes import FakePublisher, FakeRepo
from tests.unit.shared.fake_tokens import MemoryTokenStore

AUTH = {"Authorization": "Bearer test-key"}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
SURVEY = {"survey_id": "nps-q4", "customer_id": "c-1", "nps": 2, "csat": 1, "touch_point": "consultants",
          "journey_stage": "purchase", "language": "ka",
          "text": "კონსულტანტი უხეში იყო და არავინ დამეხმარა."}


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def client(publisher: FakePublisher, registry: CollectorRegistry) -> Iterator[TestClient]:
    settings = Settings(api_keys=["test-key"], max_body_bytes=200_000,
                        webhook_secrets={"survey": SecretStr(WEBHOOK_SECRET)})
    with TestClient(create_app(settings, registry, repo=FakeRepo(), publisher=publisher)) as c:
        yield c


def sent(publisher: FakePublisher, topic: str) -> list[Any]:
    return [event for name, event in publisher.sent if name == topic]


# ---- one answer ---------------------------------------------------------------------------------------
def test_an_answer_with_text_is_a_survey_feedback_item_carrying_its_scores(
    client: TestClient, publisher: FakePublisher
) -> None:
    resp = client.post("/v1/surveys", json={**SURVEY, "occurred_at": "2026-11-20T09:30:00Z",
                                            "questions": {"card": "4111 1111 1111 1111", "visits": 3}},
                       headers=AUTH)
    assert resp.status_code == 202 and resp.json()["status"] == "accepted"
    [(topic, event)] = publisher.sent
    assert topic == FEEDBACK_RECEIVED.name and isinstance(event, FeedbackReceived)
    assert str(event.event_id) == resp.json()["event_id"]
    assert (event.kind, event.source, event.customer_id, event.language) == ("survey", "survey", "c-1", "ka")
    assert (event.touch_point, event.journey_stage) == ("consultants", "purchase")
    assert event.survey is not None and (event.survey.survey_id, event.survey.nps, event.survey.csat) == ("nps-q4", 2, 1)
    assert event.survey.nps_group == "detractor"
    assert event.occurred_at == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert event.is_public is False
    # Other answers are free text too: a card number there is masked like in the text.
    assert "4111 1111 1111 1111" not in str(event.survey.questions["card"])
    assert event.survey.questions["visits"] == 3


def test_an_answer_without_text_goes_to_surveys_answered_only(client: TestClient, publisher: FakePublisher) -> None:
    body = {k: v for k, v in SURVEY.items() if k != "text"}
    resp = client.post("/v1/surveys", json=body, headers=AUTH)
    assert resp.status_code == 202
    assert sent(publisher, FEEDBACK_RECEIVED.name) == []
    [event] = sent(publisher, SURVEY_ANSWERS.name)
    assert isinstance(event, SurveyAnswered)
    assert (event.customer_id, event.touch_point, event.journey_stage) == ("c-1", "consultants", "purchase")
    assert (event.survey.nps, event.survey.csat) == (2, 1)
    assert str(event.event_id) == resp.json()["event_id"]


@pytest.mark.parametrize("text", [SURVEY["text"], None])
def test_an_answer_carries_the_expected_and_perceived_feeling_at_its_touch_point(
    client: TestClient, publisher: FakePublisher, text: str | None
) -> None:
    body = {**SURVEY, "text": text, "expected": 5, "perceived": 2}
    assert client.post("/v1/surveys", json=body, headers=AUTH).status_code == 202
    [(_, event)] = publisher.sent
    assert isinstance(event, FeedbackReceived if text else SurveyAnswered)
    assert event.survey is not None
    assert (event.survey.expected, event.survey.perceived, event.survey.expectation_gap) == (5, 2, -3)
    assert event.touch_point == "consultants"


def test_expected_and_perceived_alone_are_an_answer(client: TestClient, publisher: FakePublisher) -> None:
    body = {"survey_id": "sur3", "customer_id": "c-1", "touch_point": "store", "perceived": 4}
    assert client.post("/v1/surveys", json=body, headers=AUTH).status_code == 202
    [event] = sent(publisher, SURVEY_ANSWERS.name)
    assert (event.survey.expected, event.survey.perceived, event.survey.nps) == (None, 4, None)


@pytest.mark.parametrize(("given", "kept"), [("Price tags", "price_tags"), ("store-sign", "store_sign"),
                                             ("kiosk", "other")])
def test_a_touch_point_not_on_the_list_is_kept_as_other(
    client: TestClient, publisher: FakePublisher, given: str, kept: str
) -> None:
    assert client.post("/v1/surveys", json={**SURVEY, "touch_point": given}, headers=AUTH).status_code == 202
    assert publisher.sent[0][1].touch_point == kept


@pytest.mark.parametrize(
    ("body", "field"),
    [({**SURVEY, "nps": 11}, "nps"), ({**SURVEY, "nps": -1}, "nps"), ({**SURVEY, "csat": 0}, "csat"),
     ({**SURVEY, "csat": 6}, "csat"), ({**SURVEY, "journey_stage": "after"}, "journey_stage"),
     ({**SURVEY, "expected": 0}, "expected"), ({**SURVEY, "perceived": 6}, "perceived"),
     ({**SURVEY, "expected": 2.5}, "expected"),
     ({k: v for k, v in SURVEY.items() if k != "survey_id"}, "survey_id"), ({**SURVEY, "rating": 5}, "rating")],
)
def test_an_invalid_answer_is_422_naming_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    resp = client.post("/v1/surveys", json=body, headers=AUTH)
    assert resp.status_code == 422
    assert any(field in err["loc"] for err in resp.json()["detail"])


@pytest.mark.parametrize("empty", [{}, {"questions": {}}, {"text": None, "nps": None}])
def test_an_answer_with_nothing_answered_is_422_saying_so(
    client: TestClient, publisher: FakePublisher, empty: dict[str, Any]
) -> None:
    resp = client.post("/v1/surveys", json={"survey_id": "nps-q4", "customer_id": "c-1", **empty}, headers=AUTH)
    assert resp.status_code == 422
    assert "at least one of nps, csat, expected, perceived, text or questions" in json.dumps(resp.json())
    assert publisher.sent == []


def test_the_document_states_the_one_answer_rule(client: TestClient) -> None:
    schema = client.app.openapi()["components"]["schemas"]["SurveyIn"]  # type: ignore[attr-defined]
    one_answer, identified = schema["allOf"]
    assert sorted(rule["required"][0] for rule in one_answer["anyOf"]) == ["csat", "expected", "nps", "perceived",
                                                                        "questions", "text"]
    assert sorted(rule["required"][0] for rule in identified["anyOf"]) == ["customer_id", "response_id", "text"]
    # Documented as a string: a touch point not on the list is kept as "other", not refused.
    touch_point = json.dumps(schema["properties"]["touch_point"])
    assert "enum" not in touch_point and "product_use" in touch_point


# ---- duplicates -------------------------------------------------------------------------------------------
def test_the_same_response_id_again_is_a_duplicate(client: TestClient, publisher: FakePublisher) -> None:
    first = client.post("/v1/surveys", json={**SURVEY, "response_id": "r-1"}, headers=AUTH)
    again = client.post("/v1/surveys", json={**SURVEY, "response_id": "r-1", "nps": 9}, headers=AUTH)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    assert len(publisher.sent) == 1
    other = client.post("/v1/surveys", json={**SURVEY, "response_id": "r-2"}, headers=AUTH)
    assert other.status_code == 202


def test_without_a_response_id_one_answer_per_survey_and_customer(
    client: TestClient, publisher: FakePublisher
) -> None:
    scores_only = {k: v for k, v in SURVEY.items() if k != "text"}
    first = client.post("/v1/surveys", json=scores_only, headers=AUTH)
    again = client.post("/v1/surveys", json=scores_only, headers=AUTH)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    assert client.post("/v1/surveys", json={**scores_only, "survey_id": "csat-q4"}, headers=AUTH).status_code == 202
    assert client.post("/v1/surveys", json={**scores_only, "customer_id": "c-2"}, headers=AUTH).status_code == 202
    assert len(publisher.sent) == 3


def test_an_anonymous_answer_is_a_duplicate_only_when_it_says_the_same(
    client: TestClient, publisher: FakePublisher
) -> None:
    anonymous = {"survey_id": "nps-q4", "nps": 3, "text": "Too  long a queue", "touch_point": "staff"}
    first = client.post("/v1/surveys", json=anonymous, headers=AUTH)
    # The same answer, differently spaced (a resend through another client), is the same answer.
    again = client.post("/v1/surveys", json={**anonymous, "text": "Too long a queue "}, headers=AUTH)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["event_id"] == first.json()["event_id"]
    assert client.post("/v1/surveys", json={**anonymous, "nps": 4}, headers=AUTH).status_code == 202
    assert client.post("/v1/surveys", json={**anonymous, "touch_point": "store"}, headers=AUTH).status_code == 202
    assert len(publisher.sent) == 3


def test_an_anonymous_answer_that_felt_differently_is_another_answer(
    client: TestClient, publisher: FakePublisher
) -> None:
    anonymous = {"survey_id": "sur3", "text": "The queue", "touch_point": "staff", "expected": 4, "perceived": 2}
    first = client.post("/v1/surveys", json=anonymous, headers=AUTH)
    again = client.post("/v1/surveys", json=anonymous, headers=AUTH)
    assert (first.status_code, again.status_code) == (202, 200)
    assert client.post("/v1/surveys", json={**anonymous, "perceived": 3}, headers=AUTH).status_code == 202
    assert client.post("/v1/surveys", json={k: v for k, v in anonymous.items() if k != "expected"},
                       headers=AUTH).status_code == 202
    assert len(publisher.sent) == 3


def test_an_anonymous_answer_with_scores_only_needs_its_own_id(client: TestClient, publisher: FakePublisher) -> None:
    """Two people can give the same scores: without an id, the second would be taken for a resend."""
    scores = {"survey_id": "nps-q4", "nps": 9, "touch_point": "store"}
    refused = client.post("/v1/surveys", json=scores, headers=AUTH)
    assert refused.status_code == 422 and "response_id" in refused.text
    answers = [client.post("/v1/surveys", json={**scores, "response_id": f"r-{n}"}, headers=AUTH) for n in (1, 2)]
    assert [a.status_code for a in answers] == [202, 202] and len(publisher.sent) == 2


# ---- who may write them ---------------------------------------------------------------------------------
def test_an_integration_token_writes_surveys_only_for_its_own_sources() -> None:
    publisher = FakePublisher()
    app = create_app(Settings(api_keys=["k"]), CollectorRegistry(), repo=FakeRepo(), publisher=publisher)
    tokens = MemoryTokenStore()
    app.state.authenticator.store = tokens
    with TestClient(app) as client:
        google = {"Authorization": f"Bearer {tokens.token('integration', sources=('google',))}"}
        refused = client.post("/v1/surveys", json=SURVEY, headers=google)
        assert refused.status_code == 403 and "survey" in refused.json()["detail"]
        refused = client.post("/v1/suggestions", json={"text": "Add PayPal"}, headers=google)
        assert refused.status_code == 403 and "web_form" in refused.json()["detail"]
        assert publisher.sent == []
        surveys = {"Authorization": f"Bearer {tokens.token('integration', sources=('survey',))}"}
        assert client.post("/v1/surveys", json=SURVEY, headers=surveys).status_code == 202
        reader = {"Authorization": f"Bearer {tokens.token('reader')}"}
        assert client.post("/v1/surveys", json={**SURVEY, "customer_id": "c-9"}, headers=reader).status_code == 403
        assert len(publisher.sent) == 1


# ---- suggestions, and touch points on the other kinds ------------------------------------------------------
def test_a_suggestion_is_its_own_kind_and_a_resend_is_a_duplicate(
    client: TestClient, publisher: FakePublisher
) -> None:
    body = {"customer_id": "c-1", "text": "Please add a dark mode", "touch_point": "product_use",
            "journey_stage": "post_purchase"}
    first = client.post("/v1/suggestions", json=body, headers=AUTH)
    again = client.post("/v1/suggestions", json=body, headers=AUTH)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["event_id"] == first.json()["event_id"]
    [(topic, event)] = publisher.sent
    assert topic == FEEDBACK_RECEIVED.name
    assert (event.kind, event.source, event.touch_point, event.journey_stage) == (
        "suggestion", "web_form", "product_use", "post_purchase")
    other = client.post("/v1/suggestions", json={**body, "customer_id": "c-2"}, headers=AUTH)
    assert other.status_code == 202


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/reviews", {"source": "google", "external_id": "g-1", "text": "Nice shop"}),
    ("/v1/mentions", {"source": "x", "external_id": "m-1", "text": "Nice shop"}),
    ("/v1/feedback", {"customer_id": "c-1", "text": "Nice shop"}),
])
def test_reviews_mentions_and_complaints_take_a_touch_point_and_journey_stage(
    client: TestClient, publisher: FakePublisher, path: str, body: dict[str, Any]
) -> None:
    resp = client.post(path, json={**body, "touch_point": "Store", "journey_stage": "pre_purchase"}, headers=AUTH)
    assert resp.status_code == 202
    assert (publisher.sent[0][1].touch_point, publisher.sent[0][1].journey_stage) == ("store", "pre_purchase")
    bad = client.post(path, json={**body, "journey_stage": "later"}, headers=AUTH)
    assert bad.status_code == 422


# ---- batch, webhook and import -------------------------------------------------------------------------------
def test_a_batch_takes_survey_answers_and_suggestions(client: TestClient, publisher: FakePublisher) -> None:
    items = [{"type": "survey", **SURVEY}, {"type": "survey", "survey_id": "s", "csat": 4, "response_id": "r-4"},
             {"type": "suggestion", "text": "Open on Sundays", "customer_id": "c-1"},
             {"type": "survey", "survey_id": "s"}, {"type": "survey", **SURVEY}]
    resp = client.post("/v1/batch", json={"items": items}, headers=AUTH)
    assert resp.status_code == 200
    statuses = [r["status"] for r in resp.json()["results"]]
    assert statuses == ["accepted", "accepted", "accepted", "rejected", "duplicate"]
    assert [name for name, _ in publisher.sent].count(SURVEY_ANSWERS.name) == 1
    assert {e.kind for name, e in publisher.sent if name == FEEDBACK_RECEIVED.name} == {"survey", "suggestion"}


def test_a_batch_item_carries_expected_and_perceived(client: TestClient, publisher: FakePublisher) -> None:
    items = [{"type": "survey", "survey_id": "sur3", "response_id": "r-1", "touch_point": "catalogue",
              "expected": 3, "perceived": 5},
             {"type": "survey", "survey_id": "sur3", "response_id": "r-2", "expected": 9}]
    resp = client.post("/v1/batch", json={"items": items}, headers=AUTH)
    assert [r["status"] for r in resp.json()["results"]] == ["accepted", "rejected"]
    assert "expected" in json.dumps(resp.json()["results"][1]["errors"])
    [event] = sent(publisher, SURVEY_ANSWERS.name)
    assert (event.survey.expected, event.survey.perceived, event.survey.expectation_gap) == (3, 5, 2)


def test_a_signed_webhook_takes_a_survey_answer(client: TestClient, publisher: FakePublisher) -> None:
    payload = {"items": [{"kind": "survey", "id": 991, "survey_id": "nps-q4", "nps": 10, "touch_point": "store",
                          "journey_stage": "purchase", "comment": "Lovely staff", "name": "Ann"}]}
    body = json.dumps(payload).encode()
    resp = client.post("/v1/webhooks/survey", content=body,
                       headers={**signed_headers(WEBHOOK_SECRET, "msg-1", body), "Content-Type": "application/json"})
    assert resp.status_code == 200 and resp.json()["accepted"] == 1, resp.json()
    [event] = sent(publisher, FEEDBACK_RECEIVED.name)
    assert (event.kind, event.external_id, event.text, event.touch_point) == ("survey", "991", "Lovely staff", "store")
    assert event.survey is not None and event.survey.nps == 10


def test_a_signed_webhook_carries_expected_and_perceived(client: TestClient, publisher: FakePublisher) -> None:
    payload = {"items": [{"kind": "survey", "id": 992, "survey_id": "sur3", "touch_point": "store",
                          "comment": "Smaller than it looked online", "expected": 5, "perceived": 3}]}
    body = json.dumps(payload).encode()
    resp = client.post("/v1/webhooks/survey", content=body,
                       headers={**signed_headers(WEBHOOK_SECRET, "msg-2", body), "Content-Type": "application/json"})
    assert resp.status_code == 200 and resp.json()["accepted"] == 1, resp.json()
    [event] = sent(publisher, FEEDBACK_RECEIVED.name)
    assert event.survey is not None and (event.survey.expected, event.survey.perceived) == (5, 3)


def test_an_imported_csv_row_becomes_a_survey_item() -> None:
    row = {"type": "survey", "id": "resp-7", "survey_id": "csat-q4", "csat": "4", "nps": "8",
           "questions": '{"would_buy_again": true}', "touch_point": "catalogue"}
    item = to_item(row, source="survey", kind="review")
    assert item == {"type": "survey", "response_id": "resp-7", "survey_id": "csat-q4", "csat": 4, "nps": 8,
                    "questions": {"would_buy_again": True}, "touch_point": "catalogue", "source": "survey"}



def test_an_imported_csv_row_carries_expected_and_perceived_as_numbers() -> None:
    row = {"type": "survey", "id": "resp-8", "survey_id": "sur3", "expected": "4", "perceived": "2",
           "touch_point": "store"}
    item = to_item(row, source="survey", kind="review")
    assert (item["expected"], item["perceived"]) == (4, 2)


# ---- metrics ---------------------------------------------------------------------------------------------------
def test_nps_and_csat_are_observed_once_per_accepted_answer_by_touch_point(
    client: TestClient, registry: CollectorRegistry
) -> None:
    for _ in range(2):  # the second is a duplicate: not observed again
        client.post("/v1/surveys", json=SURVEY, headers=AUTH)
    client.post("/v1/surveys", json={"survey_id": "s", "nps": 9, "touch_point": "consultants", "response_id": "r-1"},
                headers=AUTH)
    client.post("/v1/surveys", json={"survey_id": "s", "csat": 5, "response_id": "r-2"}, headers=AUTH)

    def nps(le: str, touch_point: str = "consultants") -> float | None:
        return registry.get_sample_value("feedback_nps_score_bucket", {"touch_point": touch_point, "le": le})

    assert (nps("1.0"), nps("2.0"), nps("8.0"), nps("9.0"), nps("+Inf")) == (0, 1, 1, 2, 2)
    assert registry.get_sample_value("feedback_nps_score_sum", {"touch_point": "consultants"}) == 11
    assert registry.get_sample_value("feedback_csat_score_count", {"touch_point": "consultants"}) == 1
    assert registry.get_sample_value("feedback_csat_score_bucket", {"touch_point": "none", "le": "5.0"}) == 1
    assert nps("+Inf", "none") == 0  # the CSAT-only answer has no NPS
    journey = "feedback_journey_items_total"
    assert registry.get_sample_value(journey, {"kind": "survey", "touch_point": "consultants",
                                               "journey_stage": "purchase"}) == 1
    assert registry.get_sample_value(journey, {"kind": "survey", "touch_point": "none", "journey_stage": "none"}) == 1
    # Pre-initialised, so a dashboard shows a zero rather than no data.
    assert registry.get_sample_value(journey, {"kind": "suggestion", "touch_point": "none",
                                               "journey_stage": "none"}) == 0
    assert registry.get_sample_value("feedback_ingested_total", {"source": "survey", "kind": "survey"}) == 3


def test_a_touch_point_longer_than_documented_is_refused(client: TestClient, publisher: FakePublisher) -> None:
    resp = client.post("/v1/feedback", json={"customer_id": "c-1", "text": "Hm", "touch_point": "x" * 257},
                       headers=AUTH)
    assert resp.status_code == 422 and any("touch_point" in e["loc"] for e in resp.json()["detail"])
    assert client.post("/v1/feedback", json={"customer_id": "c-1", "text": "Hm", "touch_point": "x" * 256},
                       headers=AUTH).status_code == 202
    assert publisher.sent[0][1].touch_point == "other"


def test_a_tiny_negative_amount_is_refused_not_rounded_to_zero() -> None:
    """Found by schemathesis: -2.2e-313 rounded to 0.0000 and passed, though the document says minimum 0."""
    import pytest
    from pydantic import ValidationError

    from ingest.schemas import PurchaseIn

    with pytest.raises(ValidationError, match="not negative"):
        PurchaseIn.model_validate({"customer_id": "c", "amount": -2.2250738585e-313, "currency": "EUR", "order_id": "o"})
    assert str(PurchaseIn.model_validate({"customer_id": "c", "amount": 0.0, "currency": "EUR", "order_id": "o"}).amount) == "0.0000"
