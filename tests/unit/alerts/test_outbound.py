"""Notification URLs that point inward are refused when saved (422 with the reason) and again when
sent (the page goes dead at once, naming why, and nothing is sent); a send is capped in wall time."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.config import Settings
from alerts.domain import Delivery
from alerts.main import create_app
from alerts.metrics import AlertsMetrics
from alerts.notifier import Dispatcher, SendTimeout, within_wall_time
from tests.unit.alerts.fakes import FakeOutbox, fake_store

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("url", "reason"), [
    ("json://169.254.169.254/latest/meta-data/", "link-local"),
    ("json://10.0.0.5:8080/hook", "private"),
    ("jsons://127.0.0.1/x", "loopback"),
    ("mailto://user:pass@example.com?smtp=10.0.0.5", "smtp"),
    ("json://example.com/x?cto=600", "cto"),
    ("gopher://example.com/", "Apprise"),
])
def test_saving_an_inward_notify_url_is_422_with_the_reason(url: str, reason: str) -> None:
    app = create_app(Settings(api_keys=["admin-key"]), CollectorRegistry(), stream=False)
    app.state.store = store = fake_store()
    response = TestClient(app).put("/v1/csms/csm-1", json={"name": "Leyla", "notify": [url]},
                                   headers={"Authorization": "Bearer admin-key"})
    assert response.status_code == 422, response.text
    assert reason in str(response.json()["detail"])
    assert store.directory.csms_by_id(["csm-1"]) == {}


def test_an_operator_allow_list_admits_a_host() -> None:
    settings = Settings(api_keys=["admin-key"], outbound_allow_hosts=["10.0.0.0/24"])
    app = create_app(settings, CollectorRegistry(), stream=False)
    app.state.store = fake_store()
    response = TestClient(app).put("/v1/csms/csm-1", json={"name": "Leyla", "notify": ["json://10.0.0.5:8080/hook"]},
                                   headers={"Authorization": "Bearer admin-key"})
    assert response.status_code == 200


def test_a_page_to_an_inward_url_goes_dead_at_send_time_without_a_send() -> None:
    outbox = FakeOutbox()
    sent: list[str] = []
    dispatcher = Dispatcher(outbox, Settings(), AlertsMetrics.create(CollectorRegistry()),
                            send=lambda url, _t, _b: sent.append(url), clock=lambda: NOW)
    outbox.enqueue([Delivery("d-1", "apprise", "a-1", "json://169.254.169.254/x", title="t", body="b"),
                    Delivery("d-2", "apprise", "a-2", "json://93.184.215.14/x", title="t", body="b")], NOW)
    dispatcher.deliver_due(10)
    assert outbox.deliveries["d-1"]["status"] == "dead"
    assert "link-local" in outbox.deliveries["d-1"]["last_error"]
    assert sent == [u for u in sent if "169.254" not in u] and len(sent) == 1


def test_a_send_is_capped_in_wall_time() -> None:
    started = time.monotonic()
    with pytest.raises(SendTimeout):
        within_wall_time(lambda: time.sleep(5), 0.2)
    assert time.monotonic() - started < 2


def test_a_failing_send_reports_its_own_error() -> None:
    def send() -> None:
        raise ConnectionError("refused by the receiver")

    with pytest.raises(ConnectionError, match="refused by the receiver"):
        within_wall_time(send, 1)


def test_dead_pages_are_listed_and_requeued_by_an_admin_only() -> None:
    app = create_app(Settings(api_keys=["admin-key"]), CollectorRegistry(), stream=False)
    app.state.store = store = fake_store()
    outbox: FakeOutbox = store.outbox  # type: ignore[assignment]
    outbox.enqueue([Delivery(f"d-{i}", "apprise", f"a-{i}", "json://93.184.215.14/x", title="t", body="b")
                    for i in range(3)], NOW)
    for i in range(2):
        outbox.mark_failed(f"d-{i}", dead=True, next_attempt_at=NOW, error="receiver answered 500")
    client = TestClient(app)
    admin = {"Authorization": "Bearer admin-key"}
    listed = client.get("/v1/pages", headers=admin).json()
    assert [p["delivery_id"] for p in listed] == ["d-0", "d-1"]
    assert listed[0]["last_error"] == "receiver answered 500" and "body" not in listed[0]
    assert client.post("/v1/pages/requeue", json={"ids": ["d-1"]}, headers=admin).json() == {"requeued": 1}
    assert outbox.deliveries["d-1"]["status"] == "pending" and outbox.deliveries["d-1"]["attempts"] == 0
    assert client.post("/v1/pages/requeue", json={}, headers=admin).json() == {"requeued": 1}
    assert client.get("/v1/pages", headers=admin).json() == []
    assert client.get("/v1/pages").status_code == 401
