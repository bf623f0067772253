"""The customer's answer to the check-in after resolution comes back onto the case's thread: "not solved"
opens the case again with a new promise and pages its CSM; any other answer is recorded on the resolved
case. Only the case's own customer can do either, and a redelivered answer does it once. Survey
detractors with a text open a case like any negative item."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from alerts.checkin import reference_in
from alerts.config import Settings
from alerts.domain import Case
from alerts.metrics import AlertsMetrics
from alerts.rules import AlertPolicy, should_alert
from alerts.service import AlertService
from feedback_shared.events import SurveyScores
from tests.unit.alerts.fakes import fake_store
from tests.unit.alerts.test_decide import NOW, negative

CASE_ID = "1a2b3c4d-0000-5000-8000-000000000001"


def world() -> tuple[AlertService, Any, list[dict[str, Any]]]:
    store = fake_store()
    store.cases.insert([Case.model_validate({
        "_id": CASE_ID, "customer_id": "c-1", "csm_id": "csm-1", "priority": "high", "status": "resolved",
        "outcome": "refunded", "created_at": NOW - timedelta(days=2), "updated_at": NOW - timedelta(days=1),
        "promised_by": NOW - timedelta(days=2) + timedelta(hours=4), "escalated_at": NOW - timedelta(days=2),
        "feedback_event_ids": ["f-0"]})])
    store.directory.put_csm("csm-1", {"notify": ["json://93.184.215.14/csm-1"]})
    handed: list[dict[str, Any]] = []
    service = AlertService(store, Settings(), AlertsMetrics.create(CollectorRegistry()), AlertPolicy(),
                           clock=lambda: NOW, handoff=handed.append)
    return service, store, handed


def test_the_reference_comes_from_the_thread_or_the_quoted_subject_and_needs_a_customer() -> None:
    assert reference_in(negative(thread="case-1a2b3c4d")) == "1a2b3c4d"
    assert reference_in(negative(thread="1A2B3C4D")) == "1a2b3c4d"
    assert reference_in(negative(text="Re: Is your problem solved? [1a2b3c4d]\n\nNo, still broken.")) == "1a2b3c4d"
    assert reference_in(negative(thread="order-77")) is None
    assert reference_in(negative(customer=None, thread="case-1a2b3c4d")) is None


def test_not_solved_reopens_the_case_with_a_new_promise_and_pages_its_csm_once() -> None:
    service, store, handed = world()
    answer = negative(text="Re: [1a2b3c4d] No, it still does not work.", language="ru")
    events = service.handle_batch([answer])
    case = store.cases.get(CASE_ID)
    assert case.status == "open" and case.outcome is None and case.escalated_at is None
    assert case.promised_by > NOW and case.internal_target > NOW  # a new clock from now
    assert str(answer.feedback_event_id) in case.feedback_event_ids
    assert case.history[-1]["action"] == "reopened" and case.history[-1]["by"] == {"customer_id": "c-1"}
    assert [e.action for e in events] == ["reopened"]
    assert [d["url"] for d in handed if d["kind"] == "apprise"] == ["json://93.184.215.14/csm-1"]
    # No second case was opened for the answer.
    assert [c.id for c in store.cases.cases.values()] == [CASE_ID]
    # Redelivered: nothing more (an announcement again is under the same event id, as for any item).
    service.handle_batch([answer])
    assert store.cases.get(CASE_ID).history == case.history
    assert store.cases.get(CASE_ID).event_count == case.event_count
    assert [c.id for c in store.cases.cases.values()] == [CASE_ID]
    assert len([d for d in handed if d["kind"] == "apprise"]) == 1


def test_solved_is_recorded_on_the_resolved_case_which_stays_resolved() -> None:
    service, store, handed = world()
    thanks = negative(label="positive", thread="case-1a2b3c4d", text="Yes, all good now, thank you!")
    [event] = service.handle_batch([thanks])
    case = store.cases.get(CASE_ID)
    assert case.status == "resolved" and case.model_extra["checkin_answer"] == "positive"
    assert case.history[-1]["action"] == "checkin_answered" and event.action == "checkin_answered"
    assert not [d for d in handed if d["kind"] == "apprise"]
    service.handle_batch([thanks])
    assert len(store.cases.get(CASE_ID).history) == 1


def test_another_customer_quoting_the_reference_reopens_nothing() -> None:
    service, store, _ = world()
    service.handle_batch([negative(customer="c-2", thread="case-1a2b3c4d")])
    assert store.cases.get(CASE_ID).status == "resolved"
    assert len(store.cases.cases) == 2  # the stranger's complaint is a case of its own


def test_a_survey_detractor_with_text_alerts_whatever_its_words() -> None:
    neutral_words = negative(label="neutral", kind="survey", survey=SurveyScores(survey_id="s-1", nps=2))
    assert should_alert(neutral_words)
    assert should_alert(negative(label="neutral", kind="survey", survey=SurveyScores(survey_id="s-1", csat=1)))
    assert not should_alert(negative(label="neutral", kind="survey", survey=SurveyScores(survey_id="s-1", nps=7)))
    assert not should_alert(negative(label="positive", kind="survey", survey=SurveyScores(survey_id="s-1", csat=4)))
