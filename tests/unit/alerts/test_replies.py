"""Replying from a case: the check on a draft, a refused send with findings, an override counted, the
e-mail in the customer's language through the outbox, the case moved to responded once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.config import Settings
from alerts.domain import Case
from alerts.main import create_app
from alerts.metrics import AlertsMetrics
from alerts.rules import AlertPolicy
from alerts.service import AlertService
from tests.unit.alerts.fakes import FakeOutbox, fake_store
from tests.unit.shared.fake_tokens import MemoryTokenStore

T = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
GOOD = ("We are sorry for the delay. We can refund you or send a replacement; "
        "we will answer by 5 December at 14:00.")


class Sink:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send_all(self, events: list[Any]) -> None:
        self.sent.extend(events)


@pytest.fixture
def world() -> dict[str, Any]:
    registry = CollectorRegistry()
    settings = Settings(api_keys=["admin-key"], customer_mail_url="mailtos://care:pw@smtp.example.com?from=care@example.com",
                        reply_webhooks={"google": "https://integrations.example.com/google/replies"})
    app = create_app(settings, CollectorRegistry(), stream=False)
    store = fake_store()
    store.cases.insert([Case(_id="a-1", csm_id="csm-1", customer_id="c-1", priority="high", created_at=T,
                             updated_at=T, latest={"feedback_event_id": "e-1", "text": "Late again", "source": "google"}),
                        Case(_id="a-2", csm_id="csm-2", customer_id="c-2", priority="high", created_at=T, updated_at=T)])
    store.directory.put_account("c-1", {"csm_id": "csm-1", "email": "anna@example.org", "language": "ru",
                                        "preferred_name": "Анна Петрова", "consent": {"first_name": True}})
    app.state.store = store
    app.state.service = AlertService(store, settings, AlertsMetrics.create(registry), AlertPolicy(), clock=lambda: T)
    app.state.alert_sink = sink = Sink()
    tokens = MemoryTokenStore()
    app.state.authenticator.store = tokens
    csm = {"Authorization": f"Bearer {tokens.token('csm', csm_id='csm-1')}"}
    return {"client": TestClient(app), "store": store, "csm": csm, "sink": sink, "registry": registry}


def post(world: dict[str, Any], alert_id: str = "a-1", **body: Any) -> Any:
    return world["client"].post(f"/v1/alerts/{alert_id}/replies", json=body, headers=world["csm"])


@pytest.mark.parametrize(("text", "code"), [
    ("Please calm down, sir.", "calm_down"),
    ("Успокойтесь, пожалуйста.", "calm_down"),
    ("This is your fault.", "blame"),
])
def test_a_draft_gets_its_findings_and_nothing_is_sent(world: dict[str, Any], text: str, code: str) -> None:
    answer = post(world, text=text, send=False)
    assert answer.status_code == 200
    assert code in {f["code"] for f in answer.json()["findings"]}
    finding = next(f for f in answer.json()["findings"] if f["code"] == code)
    assert set(finding) == {"code", "start", "end", "hint"}
    outbox: FakeOutbox = world["store"].outbox
    assert outbox.deliveries == {} and world["store"].cases.get("a-1").status == "open"


def test_a_good_draft_has_no_findings(world: dict[str, Any]) -> None:
    answer = post(world, text=GOOD, send=False)
    assert answer.status_code == 200, answer.text
    assert answer.json()["findings"] == []


def test_a_reply_with_findings_is_not_sent_without_override(world: dict[str, Any]) -> None:
    refused = post(world, text="This is your fault.", send=True)
    assert refused.status_code == 409 and "blame" in {f["code"] for f in refused.json()["findings"]}
    assert world["store"].outbox.deliveries == {}


def test_an_overridden_reply_goes_out_and_each_finding_is_counted(world: dict[str, Any]) -> None:
    sent = post(world, text="This is your fault.", send=True, override=True)
    assert sent.status_code == 200 and "blame" in sent.json()["overridden"]
    assert world["registry"].get_sample_value("reply_findings_overridden_total", {"code": "blame"}) == 1


def test_a_reply_is_e_mailed_in_the_customers_language_and_the_case_is_responded_once(world: dict[str, Any]) -> None:
    first = post(world, text=GOOD, send=True)
    assert first.status_code == 200 and first.json()["status"] == "responded"
    [delivery] = world["store"].outbox.deliveries.values()
    assert delivery["url"].startswith("mailtos://care:pw@smtp.example.com?from=care@example.com&to=anna@example.org")
    assert GOOD in delivery["body"] and "Анна" in delivery["body"]  # first name permitted, Russian template
    case = world["store"].cases.get("a-1")
    assert case.status == "responded" and len(case.replies) == 1
    assert case.replies[0]["by"]["csm_id"] == "csm-1"
    again = post(world, text=GOOD, send=True)  # a double click
    assert again.json()["reply_id"] == first.json()["reply_id"]
    assert len(world["store"].outbox.deliveries) == 1 and len(world["store"].cases.get("a-1").replies) == 1
    # Announced on alerts.events.v1 each time, under the same event id (derived from the case and cause).
    assert len(world["sink"].sent) == 2 and len({e.event_id for e in world["sink"].sent}) == 1
    assert world["sink"].sent[0].status == "responded"


def test_a_public_reply_goes_to_the_sources_integration_signed(world: dict[str, Any]) -> None:
    sent = post(world, text=GOOD, channel="public", send=True)
    assert sent.status_code == 200
    [delivery] = world["store"].outbox.deliveries.values()
    assert delivery["kind"] == "webhook" and delivery["url"] == "https://integrations.example.com/google/replies"
    assert '"in_reply_to": "e-1"' in delivery["payload"]


def test_no_address_means_409_and_another_csms_case_404(world: dict[str, Any]) -> None:
    world["store"].directory.put_account("c-1", {"csm_id": "csm-1"})
    missing = post(world, text=GOOD, send=True)
    assert missing.status_code == 409 and "e-mail address" in missing.json()["detail"]
    assert post(world, alert_id="a-2", text=GOOD).status_code == 404
