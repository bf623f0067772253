"""Silent customers: an active customer (an interaction in the last 90 days) silent for 30 gets one
low-priority churn-risk case for their CSM, and no second one until they interact again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from alerts.config import Settings
from alerts.metrics import AlertsMetrics
from alerts.rules import AlertPolicy
from alerts.service import AlertService
from alerts.silence import (
    LAST_INTERACTION_RESOLUTION,
    Activity,
    SilenceMonitor,
    SilenceWindow,
    is_silent,
    moves_forward,
)
from feedback_shared.events import PurchaseRecorded
from tests.unit.alerts.fakes import fake_store
from tests.unit.alerts.test_decide import negative

T0 = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
WINDOW = SilenceWindow(silence=timedelta(days=30), active=timedelta(days=90))


class World:
    def __init__(self) -> None:
        self.now = T0
        self.store = fake_store()
        self.store.directory.put_csm("csm-kk", {"notify": ["json://93.184.215.14/csm-kk"]})
        self.store.directory.put_account("c-kk", {"csm_id": "csm-kk", "language": "kk"})
        self.store.directory.put_account("c-ru", {"language": "ru"})
        self.handed: list[dict[str, Any]] = []
        self.registry = CollectorRegistry()
        self.service = AlertService(self.store, Settings(fallback_notify=["json://93.184.215.14/queue"]),
                                    AlertsMetrics.create(self.registry), AlertPolicy(), clock=lambda: self.now,
                                    handoff=self.handed.append)
        self.monitor = SilenceMonitor(self.service.store, self.service, self.service.metrics, WINDOW,
                                      clock=lambda: self.now)

    def buys(self, customer: str, at: datetime) -> None:
        self.service.record_commerce([PurchaseRecorded(order_id=uuid.uuid4().hex, customer_id=customer,
                                                       amount=Decimal(10), currency="KZT", occurred_at=at)])

    def writes(self, customer: str, at: datetime, text: str) -> None:
        self.service.handle_batch([negative(customer, label="positive", text=text, ingested_at=at)])

    def churn_cases(self) -> list[Any]:
        return sorted((c for c in self.store.cases.cases.values() if c.kind == "churn_risk"),
                      key=lambda c: c.created_at)


def test_the_window_is_active_and_silent_and_unflagged() -> None:
    now = T0 + timedelta(days=40)
    assert is_silent(Activity("c", T0), *WINDOW.bounds(now))
    assert not is_silent(Activity("c", T0 + timedelta(days=20)), *WINDOW.bounds(now))  # not silent long enough
    assert not is_silent(Activity("c", now - timedelta(days=91)), *WINDOW.bounds(now))  # no longer active
    assert not is_silent(Activity("c", T0, flagged_for=T0), *WINDOW.bounds(now))  # its case is open already


def test_the_last_interaction_moves_forward_by_an_hour_at_least_or_at_once_to_clear_the_mark() -> None:
    hour = LAST_INTERACTION_RESOLUTION
    assert not moves_forward(T0, None, T0)  # the same interaction again (a redelivery)
    assert not moves_forward(T0, None, T0 - timedelta(days=1))  # an older one, out of order
    assert not moves_forward(T0, None, T0 + hour - timedelta(seconds=1))  # within the hour: no write
    assert moves_forward(T0, None, T0 + hour)
    # A churn-risk case was opened for the stored interaction: any newer one clears the mark at once,
    # so the customer's next silence can open another case.
    assert moves_forward(T0, T0, T0 + timedelta(minutes=1))
    assert not moves_forward(T0, T0, T0)


def test_a_customer_who_writes_again_within_the_hour_still_counts_from_the_first_interaction() -> None:
    world = World()
    world.store.activity.touch([("c-kk", T0)])
    world.store.activity.touch([("c-kk", T0 + timedelta(minutes=20))])
    [found] = world.store.activity.silent(*WINDOW.bounds(T0 + timedelta(days=30, minutes=10)))
    assert found.last_interaction_at == T0  # silent for 30 days, give or take the hour the rule ignores


def test_a_silent_customer_gets_one_low_priority_case_for_their_csm_in_their_language() -> None:
    w = World()
    w.buys("c-kk", T0)
    w.writes("c-ru", T0, "Всё отлично, спасибо!")
    w.now = T0 + timedelta(days=29)
    assert w.monitor.check() == []  # not yet
    w.now = T0 + timedelta(days=31)
    events = w.monitor.check()
    kk, ru = sorted(w.churn_cases(), key=lambda c: c.customer_id)
    assert (kk.csm_id, kk.priority, kk.status, kk.latest.language) == ("csm-kk", "low", "open", "kk")
    assert (ru.csm_id, ru.latest.language) == ("fallback-queue", "ru")
    assert {e.event_type for e in events} == {"alert.raised"} and len(events) == 2
    pages = sorted(d["url"] for d in w.handed if d["kind"] == "apprise")
    assert pages == ["json://93.184.215.14/csm-kk", "json://93.184.215.14/queue"]
    assert w.registry.get_sample_value("churn_risk_cases_total") == 2
    # The next sweeps, however many: nothing more.
    for days in (32, 45, 80):
        w.now = T0 + timedelta(days=days)
        assert w.monitor.check() == []
    assert len(w.churn_cases()) == 2


def test_no_second_case_until_the_customer_interacts_again_then_one_more_after_another_silence() -> None:
    w = World()
    w.buys("c-kk", T0)
    w.now = T0 + timedelta(days=31)
    w.monitor.check()
    w.buys("c-kk", T0 - timedelta(days=5))  # an older purchase arriving late changes nothing
    w.now = T0 + timedelta(days=33)
    assert w.monitor.check() == []
    w.writes("c-kk", T0 + timedelta(days=35), "Тапсырыс келді, рахмет")
    w.now = T0 + timedelta(days=60)
    assert w.monitor.check() == []  # 25 days since: not silent yet
    w.now = T0 + timedelta(days=66)
    [event] = w.monitor.check()
    first, second = w.churn_cases()
    assert event.alert_id == second.id != first.id


def test_a_customer_silent_past_the_active_window_is_not_a_churn_risk_any_more() -> None:
    w = World()
    w.buys("c-kk", T0)
    w.now = T0 + timedelta(days=120)
    assert w.monitor.check() == [] and w.churn_cases() == []


def test_erasure_forgets_when_the_customer_last_interacted() -> None:
    w = World()
    w.buys("c-kk", T0)
    w.service.erase_customer("c-kk", T0 + timedelta(days=1))
    w.now = T0 + timedelta(days=31)
    assert w.monitor.check() == []


def test_silence_must_be_shorter_than_the_active_window() -> None:
    with pytest.raises(ValidationError, match="ALERTS_SILENCE_DAYS"):
        Settings(silence_days=90, active_days=90)
