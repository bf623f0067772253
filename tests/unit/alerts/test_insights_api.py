"""``GET /v1/insights``, its drill-down and the ``/insights`` page: who may read them, what bad input
gets, what they answer; and the customer's satisfaction index on the whole case."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.config import Settings
from alerts.main import create_app
from alerts.metrics import AlertsMetrics
from alerts.rules import AlertPolicy
from alerts.service import AlertService
from alerts.timeline import satisfaction_index
from feedback_shared.events import utcnow
from tests.unit.alerts.fakes import fake_store
from tests.unit.alerts.test_decide import NOW, negative
from tests.unit.alerts.test_insights import item
from tests.unit.shared.fake_tokens import MemoryTokenStore

TODAY = utcnow().date()


@pytest.fixture
def world() -> tuple[TestClient, MemoryTokenStore, Any]:
    app = create_app(Settings(api_keys=["static-admin"]), CollectorRegistry(), stream=False)
    store = fake_store()
    app.state.store = store
    tokens = MemoryTokenStore()
    app.state.authenticator.store = tokens
    return TestClient(app), tokens, store


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_reader_gets_the_insights(world: Any) -> None:
    client, tokens, store = world
    store.insights.record([item(TODAY, nps=1, excerpt="too dear"), item(TODAY - timedelta(days=120), nps=10),
                           item(TODAY, sentiment="positive", score=0.7, needs=(("price", "positive"),), nps=10)])
    response = client.get("/v1/insights", headers=bearer(tokens.token("reader")))
    assert response.status_code == 200
    body = response.json()
    assert len(body["weeks"]) == 8 and body["to"] == TODAY.isoformat() and body["by"] == "need"
    assert body["totals"]["items"] == 2 and body["totals"]["nps"] == 0.0  # the older item is outside the range
    assert body["series"][0]["group"] == "price" and body["series"][0]["negative_share"][-1] == 0.5
    assert body["rising"][0]["group"] == "price" and body["rising"][0]["top_items"][0]["excerpt"] == "too dear"
    assert body["drivers"] == [{"need": "price", "detractors": 1, "promoters": 1, "detractor_share": 1.0,
                                "promoter_share": 1.0}]
    assert set(body["scores"]) >= {"nps", "csat", "net_sentiment"}


def test_the_insights_give_each_touch_points_expected_perceived_and_gap_in_the_range(world: Any) -> None:
    client, tokens, store = world
    store.insights.record([item(TODAY, touch_point="consultants", expected=5, perceived=2),
                           item(TODAY - timedelta(days=1), touch_point="consultants", expected=4, perceived=2),
                           item(TODAY - timedelta(days=30), touch_point="consultants", expected=1, perceived=5)])
    reader = bearer(tokens.token("reader"))
    body = client.get("/v1/insights", params={"from": (TODAY - timedelta(days=6)).isoformat()}, headers=reader).json()
    assert body["expectations"] == [{"touch_point": "consultants", "expected": 4.5, "expected_answers": 2,
                                     "perceived": 2.0, "perceived_answers": 2, "gap": -2.5, "answers": 2}]
    whole = client.get("/v1/insights", params={"from": (TODAY - timedelta(days=40)).isoformat()}, headers=reader).json()
    assert whole["expectations"][0]["answers"] == 3 and whole["expectations"][0]["gap"] == round((-3 - 2 + 4) / 3, 2)
    [drilled] = client.get("/v1/insights/items", params={"from": TODAY.isoformat()}, headers=reader).json()
    assert (drilled["expected"], drilled["perceived"]) == (5, 2)


@pytest.mark.parametrize(("role", "expected"), [("reader", 200), ("manager", 200), ("csm", 403), ("integration", 403)])
def test_insights_are_for_readers_and_above_not_for_a_csm(world: Any, role: str, expected: int) -> None:
    client, tokens, _ = world
    headers = bearer(tokens.token(role, csm_id="csm-1" if role == "csm" else None))
    assert client.get("/v1/insights", headers=headers).status_code == expected
    assert client.get("/v1/insights/items", headers=headers).status_code == expected
    assert client.get("/static/insights.js", headers=headers).status_code == expected
    assert client.get("/v1/insights").status_code == 401


@pytest.mark.parametrize("params", [
    {"from": "2026-13-01"}, {"from": "yesterday"}, {"from": "2026-12-02", "to": "2026-12-01"},
    {"from": "2025-01-01", "to": "2026-12-01"}, {"by": "customer"}, {"week": "1"},
])
def test_bad_input_is_refused(world: Any, params: dict[str, str]) -> None:
    client, tokens, _ = world
    assert client.get("/v1/insights", params=params, headers=bearer(tokens.token("reader"))).status_code == 422


def test_the_drill_down_lists_the_items_behind_a_number(world: Any) -> None:
    client, tokens, store = world
    store.insights.record([item(TODAY, item_id="a", needs=(("price", "negative"),), language="ka", excerpt="ძვირია"),
                           item(TODAY, item_id="b", needs=(("price", "positive"),), sentiment="positive", score=0.5),
                           item(TODAY - timedelta(days=1), item_id="c", needs=(("empathy", "negative"),),
                                touch_point="staff")])
    reader = bearer(tokens.token("reader"))

    def ids(**params: Any) -> list[str]:
        response = client.get("/v1/insights/items", params=params, headers=reader)
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()]

    assert ids() == ["a", "b", "c"]  # newest first
    assert ids(need="price", sentiment="negative") == ["a"]
    assert ids(language="ka") == ["a"] and ids(touch_point="staff") == ["c"] and ids(limit=1) == ["a"]
    [first] = client.get("/v1/insights/items", params={"language": "ka"}, headers=reader).json()
    assert first["excerpt"] == "ძვირია" and first["needs"][0]["need"] == "price"
    for bad in ({"need": "happiness"}, {"touch_point": "moon"}, {"sentiment": "angry"}, {"limit": "0"}):
        assert client.get("/v1/insights/items", params=bad, headers=reader).status_code == 422


def test_a_reader_signs_in_to_the_insights_page(world: Any) -> None:
    client, tokens, _ = world
    assert client.get("/insights").status_code == 401  # the sign-in form
    assert 'name="next" value="/insights"' in client.get("/insights").text
    response = client.post("/login", content=f"token={tokens.token('reader')}", follow_redirects=False,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 303 and response.headers["location"] == "/insights"
    page = client.get("/insights", params={"by": "touch_point"})
    assert page.status_code == 200 and 'data-by="touch_point"' in page.text
    assert 'id="chart-expectations"' in page.text and '<table id="expectations">' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "<script>" not in page.text  # no inline script
    assert '<script src="/static/vendor/uplot/uPlot.iife.min.js"></script><script src="/static/insights.js">' in page.text
    library = client.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert library.status_code == 200 and "uPlot" in library.text and library.headers["content-type"].startswith(
        "text/javascript")
    assert client.get("/static/vendor/uplot/uPlot.min.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/../config.py").status_code == 404
    assert client.get("/static/vendor/uplot/LICENSE").status_code == 404  # only what the page loads
    assert client.get("/insights", params={"from": "2026-12-02", "to": "2026-12-01"}).status_code == 422


def test_signing_in_goes_back_only_to_a_known_page(world: Any) -> None:
    client, tokens, _ = world
    response = client.post("/login", content=f"token={tokens.token('manager')}&next=https://evil.example/",
                           follow_redirects=False, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.headers["location"] == "/"
    response = client.post("/login", content=f"token={tokens.token('manager')}&next=/insights",
                           follow_redirects=False, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.headers["location"] == "/insights"


def test_a_csm_has_no_insights_page(world: Any) -> None:
    client, tokens, _ = world
    client.post("/login", content=f"token={tokens.token('csm', csm_id='csm-1')}", follow_redirects=False,
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert client.get("/").status_code == 200
    assert client.get("/insights").status_code == 403


def test_the_satisfaction_index_is_the_mean_of_the_last_ten_scores() -> None:
    entries = [{"kind": "feedback", "at": NOW - timedelta(hours=i), "score": -1.0 if i < 5 else 1.0}
               for i in range(15)] + [{"kind": "purchase", "at": NOW}]
    assert satisfaction_index(entries) == {"index": 0.0, "scores": 10, "window": 10}  # 5 × -1, 5 × +1; 5 older dropped
    assert satisfaction_index([{"kind": "purchase", "at": NOW}]) is None


def test_the_whole_case_shows_the_customers_satisfaction_index(world: Any) -> None:
    client, _, store = world
    store.directory.put_account("c-1", {"csm_id": "csm-1", "preferred_name": "Anna"})
    settings = Settings(api_keys=["static-admin"])
    service = AlertService(store, settings, AlertsMetrics.create(CollectorRegistry()), AlertPolicy(), clock=lambda: NOW)
    service.handle_batch([negative("c-1"), negative("c-1", label="positive", ingested_at=NOW - timedelta(minutes=5))])
    [case] = list(store.cases.cases.values())
    whole = client.get(f"/v1/alerts/{case.id}", headers=bearer("static-admin")).json()
    assert whole["satisfaction"] == {"index": -0.1, "scores": 2, "window": 10}  # (-0.8 + 0.6) / 2
    assert whole["customer"]["satisfaction_index"] == -0.1
    page = client.get(f"/cases/{case.id}", headers=bearer("static-admin"))
    assert "Satisfaction index <b class=\"sat-mixed\">-0.10</b>" in page.text
