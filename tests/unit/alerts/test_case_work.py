"""Working a case: notes, reassignment (the new owner is paged), a root cause from the 16 needs,
waiting on the customer (the SLA clock stops, and restarts shifted when they write), resolving with an
outcome. Every action is in the case's history with who did it, and announced on alerts.events.v1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.config import Settings
from alerts.domain import Case
from alerts.main import create_app
from alerts.metrics import AlertsMetrics
from alerts.rules import AlertPolicy, sla_due
from alerts.service import AlertService
from tests.unit.alerts.fakes import fake_store
from tests.unit.alerts.test_decide import negative
from tests.unit.shared.fake_tokens import MemoryTokenStore

T = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


class Sink:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send_all(self, events: list[Any]) -> None:
        self.sent.extend(events)


class Clock:
    def __init__(self) -> None:
        self.now = T

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world() -> dict[str, Any]:
    settings = Settings(api_keys=["admin-key"])
    app = create_app(settings, CollectorRegistry(), stream=False)
    store = fake_store()
    store.cases.insert([Case(_id="a-1", csm_id="csm-1", customer_id="c-1", priority="high", created_at=T,
                             updated_at=T, promised_by=T + timedelta(hours=4),
                             internal_target=T + timedelta(hours=3))])
    store.directory.put_csm("csm-1", {"notify": ["json://93.184.215.14/csm-1"]})
    store.directory.put_csm("csm-2", {"notify": ["json://93.184.215.14/csm-2"]})
    clock = Clock()
    handed: list[dict[str, Any]] = []
    app.state.store = store
    app.state.service = AlertService(store, settings, AlertsMetrics.create(CollectorRegistry()), AlertPolicy(),
                                     clock=clock, handoff=handed.append)
    app.state.alert_sink = sink = Sink()
    tokens = MemoryTokenStore()
    app.state.authenticator.store = tokens
    return {"client": TestClient(app), "store": store, "sink": sink, "clock": clock, "handed": handed,
            "csm": {"Authorization": f"Bearer {tokens.token('csm', csm_id='csm-1')}"},
            "csm2": {"Authorization": f"Bearer {tokens.token('csm', csm_id='csm-2')}"}}


def test_a_note_is_kept_in_the_history_with_who_wrote_it(world: dict[str, Any]) -> None:
    answer = world["client"].post("/v1/alerts/a-1/notes", json={"text": "Called, no answer."}, headers=world["csm"])
    assert answer.status_code == 200
    [entry] = world["store"].cases.get("a-1").history
    assert (entry["action"], entry["text"], entry["by"]["csm_id"]) == ("note", "Called, no answer.", "csm-1")
    [event] = world["sink"].sent
    assert (event.action, event.actor) == ("note", "csm-1")


def test_reassigning_hands_the_case_over_and_pages_the_new_owner(world: dict[str, Any]) -> None:
    answer = world["client"].post("/v1/alerts/a-1/reassign", json={"csm_id": "csm-2", "reason": "Speaks Kazakh"},
                                  headers=world["csm"])
    assert answer.status_code == 200 and answer.json()["csm_id"] == "csm-2"
    assert [d["url"] for d in world["handed"]] == ["json://93.184.215.14/csm-2"]
    # The case is now csm-2's: csm-1 no longer sees it, csm-2 does.
    assert world["client"].get("/v1/alerts/a-1", headers=world["csm"]).status_code == 404
    assert world["client"].get("/v1/alerts/a-1", headers=world["csm2"]).status_code == 200
    [entry] = world["store"].cases.get("a-1").history
    assert (entry["from"], entry["to"]) == ("csm-1", "csm-2")
    unknown = world["client"].post("/v1/alerts/a-1/reassign", json={"csm_id": "nobody"}, headers=world["csm2"])
    assert unknown.status_code == 404 and "nobody" in unknown.json()["detail"]


def test_a_root_cause_is_one_of_the_needs(world: dict[str, Any]) -> None:
    ok = world["client"].post("/v1/alerts/a-1/root-cause", json={"need": "reliability"}, headers=world["csm"])
    assert ok.status_code == 200 and ok.json()["root_cause"] == "reliability"
    assert world["client"].post("/v1/alerts/a-1/root-cause", json={"need": "vibes"},
                                headers=world["csm"]).status_code == 422


def test_waiting_on_the_customer_stops_the_clock_until_they_write_again(world: dict[str, Any]) -> None:
    client, store, clock = world["client"], world["store"], world["clock"]
    assert client.post("/v1/alerts/a-1/ack", headers=world["csm"]).json()["status"] == "acknowledged"
    waiting = client.post("/v1/alerts/a-1/waiting", headers=world["csm"])
    assert waiting.status_code == 200 and waiting.json()["status"] == "waiting_on_customer"
    case = store.cases.get("a-1")
    assert sla_due(case, T + timedelta(hours=10)) == (False, False)  # no escalation, no breach while waiting
    clock.now = T + timedelta(hours=2)  # two hours later the customer writes (a positive item resumes too)
    service: AlertService = client.app.state.service
    service.handle_batch([negative("c-1", label="positive")])
    resumed = store.cases.get("a-1")
    assert resumed.status == "acknowledged"
    assert resumed.promised_by == T + timedelta(hours=6) and resumed.internal_target == T + timedelta(hours=5)
    assert resumed.history[-1]["action"] == "customer_wrote"
    service.handle_batch([negative("c-1", label="positive")])  # a redelivery does not shift it twice
    assert store.cases.get("a-1").promised_by == T + timedelta(hours=6)


def test_resolving_names_the_outcome_and_who_resolved(world: dict[str, Any]) -> None:
    client = world["client"]
    client.post("/v1/alerts/a-1/respond", headers=world["csm"])
    done = client.post("/v1/alerts/a-1/resolve", json={"outcome": "refunded"}, headers=world["csm"])
    assert done.status_code == 200 and done.json()["status"] == "resolved" and done.json()["outcome"] == "refunded"
    assert [e["action"] for e in world["store"].cases.get("a-1").history] == ["status:responded", "status:resolved"]
    assert client.post("/v1/alerts/a-1/resolve", headers=world["csm"]).status_code == 409
    assert [e.status for e in world["sink"].sent] == ["responded", "resolved"]
