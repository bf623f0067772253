"""Silent customers on the real database, with a clock the test moves: a Kazakh- and a Russian-speaking
customer who bought and wrote, then went quiet, each get one low-priority churn-risk case for their CSM
after 30 days, whatever the redeliveries and however many sweeps; a new interaction, then another silence,
opens one more."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pymongo import MongoClient

from alerts.config import Settings
from alerts.metrics import AlertsMetrics
from alerts.rules import AlertPolicy
from alerts.service import AlertService
from alerts.silence import SilenceMonitor
from alerts.stores import AlertsStore
from feedback_shared.events import PurchaseRecorded
from feedback_tools.devstack import EmbeddedStack
from tests.unit.alerts.test_decide import negative

pytestmark = pytest.mark.integration
T0 = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(stack: EmbeddedStack) -> Iterator[dict[str, Any]]:
    client: MongoClient[dict[str, Any]] = MongoClient(stack.config.mongo_url, tz_aware=True)
    name = f"alerts_silence_{uuid.uuid4().hex[:8]}"
    store = AlertsStore.mongo(client[name])
    store.ensure_indexes()
    clock = {"now": T0}
    settings = Settings(fallback_notify=["json://127.0.0.1:9/queue"])
    service = AlertService(store, settings, AlertsMetrics.create(CollectorRegistry()), AlertPolicy(),
                           clock=lambda: clock["now"])
    store.directory.put_csm("csm-kk", {"notify": ["json://127.0.0.1:9/csm-kk"]})
    store.directory.put_account("c-kk", {"csm_id": "csm-kk", "language": "kk"})
    store.directory.put_account("c-ru", {"language": "ru"})
    yield {"store": store, "service": service, "clock": clock,
           "monitor": SilenceMonitor(store, service, service.metrics, settings.silence_window(),
                                      clock=lambda: clock["now"])}
    client.drop_database(name)
    client.close()


def churn_cases(store: AlertsStore) -> list[Any]:
    return sorted((c for c in store.cases.find(status=None, csm=None, need=None, limit=100)
                   if c.kind == "churn_risk"), key=lambda c: (c.created_at, c.customer_id))


def test_each_silent_customer_gets_one_churn_risk_case_until_they_interact_again(world: dict[str, Any]) -> None:
    store, service, clock, monitor = world["store"], world["service"], world["clock"], world["monitor"]
    purchase = PurchaseRecorded(order_id="o-kk-1", customer_id="c-kk", amount=Decimal(12000), currency="KZT",
                                occurred_at=T0)
    review = negative("c-ru", label="positive", text="Всё пришло вовремя, спасибо!", ingested_at=T0)
    for _ in range(2):  # redelivered
        service.record_commerce([purchase])
        service.handle_batch([review])
    clock["now"] = T0 + timedelta(days=29)
    assert monitor.check() == []
    clock["now"] = T0 + timedelta(days=31)
    assert len(monitor.check()) == 2
    for days in (31, 32, 50):  # more sweeps (another replica, the next hour): nothing more
        clock["now"] = T0 + timedelta(days=days)
        assert monitor.check() == []
    kk, ru = sorted(churn_cases(store), key=lambda c: c.customer_id)
    assert (kk.csm_id, kk.priority, kk.latest.language) == ("csm-kk", "low", "kk")
    assert (ru.csm_id, ru.latest.language) == ("fallback-queue", "ru")
    pages = store.outbox.outbox.find({"alert_id": {"$in": [kk.id, ru.id]}})  # type: ignore[attr-defined]
    assert sorted(p["url"] for p in pages) == ["json://127.0.0.1:9/csm-kk", "json://127.0.0.1:9/queue"]

    # The Kazakh customer writes again, then goes quiet: one more case, 30 days after that.
    service.handle_batch([negative("c-kk", label="positive", text="Тағы да рахмет!",
                                   ingested_at=T0 + timedelta(days=51))])
    clock["now"] = T0 + timedelta(days=80)
    assert monitor.check() == []
    clock["now"] = T0 + timedelta(days=82)
    [event] = monitor.check()
    assert event.customer_id == "c-kk" and len(churn_cases(store)) == 3
