"""Survey answers and suggestions through the real broker, database and services: a detractor's answer
with text is scored with its survey fields and opens a case; a text-less answer goes to
surveys.answered.v1; a suggestion reaches the product team's topic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from feedback_shared.topics import FEEDBACK_SCORED, PRODUCT_SUGGESTIONS, SURVEY_ANSWERS, TopicSpec
from feedback_tools.devstack import EmbeddedStack
from tests.helpers import alerts_for, eventually, read_topic, uid

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]


def events_on(stack: EmbeddedStack, spec: TopicSpec[Any], match: Callable[[Any], bool]) -> list[Any]:
    records = asyncio.run(read_topic(stack.config.bootstrap, spec.name, timeout_s=3))
    return [event for event in (spec.decode(r.value) for r in records) if match(event)]


def test_a_detractor_with_text_is_scored_with_its_survey_fields_and_opens_a_case(
    api: Api, stack: EmbeddedStack
) -> None:
    customer, csm = uid("cust"), uid("csm")
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Nino", "notify": []}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm}).raise_for_status()
    answer = {"survey_id": uid("nps"), "customer_id": customer, "nps": 2, "csat": 1, "touch_point": "consultants",
              "journey_stage": "purchase", "language": "ka",
              "text": "მომსახურება საშინელი იყო, კონსულტანტი უხეში იყო და არავინ დამეხმარა. აღარ დავბრუნდები."}
    resp = api("ingest").post("/v1/surveys", json=answer)
    assert resp.status_code == 202, resp.text
    event_id = resp.json()["event_id"]

    [scored] = eventually(lambda: events_on(stack, FEEDBACK_SCORED, lambda e: str(e.feedback_event_id) == event_id),
                          timeout_s=30, interval_s=1)
    assert scored.kind == "survey" and scored.customer_id == customer
    assert scored.survey is not None and (scored.survey.nps, scored.survey.csat) == (2, 1)
    assert (scored.touch_point, scored.journey_stage) == ("consultants", "purchase")
    assert scored.sentiment.label == "negative"
    [alert] = eventually(lambda: alerts_for(api, customer), timeout_s=30)
    assert alert["latest"]["feedback_event_id"] == event_id

    again = api("ingest").post("/v1/surveys", json=answer)
    assert again.status_code == 200 and again.json() == {"status": "duplicate", "event_id": event_id}


def test_an_answer_without_text_goes_to_surveys_answered(api: Api, stack: EmbeddedStack) -> None:
    answer = {"survey_id": uid("csat"), "response_id": uid("resp"), "csat": 4, "nps": 8, "touch_point": "Price tags",
              "questions": {"would_buy_again": True}}
    resp = api("ingest").post("/v1/surveys", json=answer)
    assert resp.status_code == 202, resp.text
    event_id = resp.json()["event_id"]
    [answered] = eventually(lambda: events_on(stack, SURVEY_ANSWERS, lambda e: str(e.event_id) == event_id),
                            timeout_s=15, interval_s=1)
    assert (answered.survey.csat, answered.survey.nps, answered.touch_point) == (4, 8, "price_tags")
    assert answered.survey.questions == {"would_buy_again": True}
    assert api("ingest").post("/v1/surveys", json=answer).json() == {"status": "duplicate", "event_id": event_id}


def test_a_suggestion_reaches_the_product_team(api: Api, stack: EmbeddedStack) -> None:
    resp = api("ingest").post("/v1/suggestions", json={"customer_id": uid("cust"), "touch_point": "product_use",
                                                       "text": "Please add a dark mode to the app."})
    assert resp.status_code == 202, resp.text
    event_id = resp.json()["event_id"]
    [suggestion] = eventually(
        lambda: events_on(stack, PRODUCT_SUGGESTIONS, lambda e: str(e.feedback_event_id) == event_id),
        timeout_s=30, interval_s=1)
    assert suggestion.kind == "suggestion" and suggestion.feedback_type == "suggestion"
    assert suggestion.touch_point == "product_use"
