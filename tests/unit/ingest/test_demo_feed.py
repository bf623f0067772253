"""The demo feed (``feedbackctl demo``, ``make run``) is accepted whole by ingest, and its survey answers
span touch points, languages and the last two weeks whenever it is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.resources import files

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from feedback_shared.events import FeedbackReceived, SurveyAnswered
from feedback_tools.ctl import demo_requests
from ingest.config import Settings
from ingest.main import create_app
from tests.unit.ingest.fakes import FakePublisher, FakeRepo

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_every_demo_item_is_accepted_and_surveys_cover_two_weeks() -> None:
    lines = files("feedback_tools").joinpath("demo_feed.jsonl").read_text("utf-8").splitlines()
    publisher = FakePublisher()
    app = create_app(Settings(api_keys=["k"]), CollectorRegistry(), repo=FakeRepo(), publisher=publisher)
    with TestClient(app) as client:
        for endpoint, body in demo_requests(lines, NOW):
            resp = client.post(endpoint, json=body, headers={"Authorization": "Bearer k"})
            assert resp.status_code == 202, (endpoint, body, resp.text)
    surveys = [e for _, e in publisher.sent
               if isinstance(e, SurveyAnswered) or (isinstance(e, FeedbackReceived) and e.kind == "survey")]
    assert len(surveys) >= 40
    assert len({e.touch_point for e in surveys}) >= 5
    assert {"ka", "ru", "en"} <= {e.language for e in surveys}
    assert any(e.survey.nps is not None for e in surveys) and any(e.survey.csat is not None for e in surveys)
    assert any(isinstance(e, SurveyAnswered) for e in surveys) and any(isinstance(e, FeedbackReceived) for e in surveys)
    # The black-box case: a Georgian detractor with a text.
    assert any(isinstance(e, FeedbackReceived) and e.language == "ka" and e.survey.nps is not None
               and e.survey.nps <= 6 for e in surveys)
    # SUR-3: expected and perceived at several touch points, some falling short and some exceeding.
    rated = [e for e in surveys if e.survey.expectation_gap is not None]
    assert len({e.touch_point for e in rated}) >= 5
    assert any(e.survey.expectation_gap < 0 for e in rated) and any(e.survey.expectation_gap > 0 for e in rated)
    assert any(isinstance(e, SurveyAnswered) for e in rated) and any(isinstance(e, FeedbackReceived) for e in rated)
    ages = [NOW - e.occurred_at for e in surveys]
    assert all(timedelta(0) <= age <= timedelta(days=14) for age in ages)
    assert max(ages) >= timedelta(days=12) and min(ages) <= timedelta(days=1)
    assert sum(1 for _, e in publisher.sent if getattr(e, "kind", None) == "suggestion") >= 3
