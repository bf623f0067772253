"""The whole case: the customer, their timeline across channels (fed by scored items, purchases,
points and replies), earlier cases with their replies, and the case page that shows it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.config import Settings
from alerts.domain import Case
from alerts.main import create_app
from alerts.metrics import AlertsMetrics
from alerts.rules import AlertPolicy
from alerts.service import AlertService
from feedback_shared.events import PurchaseRecorded, TierChanged
from tests.unit.alerts.fakes import fake_store
from tests.unit.alerts.test_decide import NOW, negative


def world() -> tuple[TestClient, Any, AlertService]:
    settings = Settings(api_keys=["admin-key"])
    app = create_app(settings, CollectorRegistry(), stream=False)
    store = fake_store()
    store.directory.put_account("c-1", {"csm_id": "csm-1", "preferred_name": "Anna", "language": "kk",
                                        "preferred_channel": "email", "consent": {"first_name": True}})
    app.state.store = store
    service = AlertService(store, settings, AlertsMetrics.create(CollectorRegistry()), AlertPolicy(), clock=lambda: NOW)
    app.state.service = service
    return TestClient(app), store, service


def test_the_timeline_is_fed_by_every_channel_once() -> None:
    client, store, service = world()
    item = negative("c-1")
    service.handle_batch([item, negative("c-1", label="positive")])
    service.handle_batch([item])  # redelivered
    purchase = PurchaseRecorded(order_id="o-1", customer_id="c-1", amount=Decimal("20"), currency="EUR",
                                occurred_at=NOW - timedelta(days=3))
    service.record_commerce([purchase, purchase])
    service.record_points([TierChanged(customer_id="c-1", tier="silver", previous_tier="bronze", points_earned=600,
                                      entry_id="e", rule="tier", points=0, trace_id="t")])
    kinds = sorted(e["kind"] for e in store.timeline.of("c-1"))
    assert kinds == ["feedback", "feedback", "purchase", "tier"]


def test_the_case_api_and_page_show_the_whole_case() -> None:
    client, store, service = world()
    t = NOW - timedelta(days=30)
    store.cases.insert([Case(_id="old", csm_id="csm-1", customer_id="c-1", priority="normal", status="resolved",
                             created_at=t, updated_at=t, outcome="refunded",
                             replies=[{"reply_id": "r", "text": "We refunded you.", "at": t, "channel": "email"}])])
    service.handle_batch([negative("c-1")])
    service.record_commerce([PurchaseRecorded(order_id="o-9", customer_id="c-1", amount=Decimal("5"), currency="EUR")])
    [case] = [c for c in store.cases.cases.values() if c.status == "open"]
    admin = {"Authorization": "Bearer admin-key"}
    whole = client.get(f"/v1/alerts/{case.id}", headers=admin).json()
    assert whole["customer"]["preferred_name"] == "Anna" and whole["customer"]["language"] == "kk"
    assert {e["kind"] for e in whole["timeline"]} == {"feedback", "purchase"}
    [earlier] = whole["earlier_cases"]
    assert earlier["alert_id"] == "old" and earlier["replies"][0]["text"] == "We refunded you."
    page = client.get(f"/cases/{case.id}", headers=admin)
    assert page.status_code == 200
    assert "o-9" in page.text and "We refunded you." in page.text and 'id="reply-text"' in page.text
    assert "<script>" not in page.text and "onclick" not in page.text
    assert client.get(f"/cases/{case.id}").status_code == 401
    assert client.get(f"/cases/{uuid.uuid4()}", headers=admin).status_code == 404


def test_erasure_takes_the_customers_timeline() -> None:
    _, store, service = world()
    service.handle_batch([negative("c-1")])
    store.erase_customer("c-1", NOW, NOW)
    assert store.timeline.of("c-1") == []
