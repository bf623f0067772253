"""Alerts' service over in-memory stores: load → decide → persist → effects, and what a batch costs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from alerts.config import Settings
from alerts.metrics import AlertsMetrics
from alerts.rules import AlertPolicy, SpikePolicy
from alerts.service import AlertService
from alerts.stores import AlertsStore
from tests.unit.alerts.fakes import FakeCases, FakeOutbox, fake_store
from tests.unit.alerts.test_decide import negative

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def service(store: AlertsStore, **settings: Any) -> tuple[AlertService, list[dict[str, Any]], CollectorRegistry]:
    registry = CollectorRegistry()
    handed: list[dict[str, Any]] = []
    svc = AlertService(store, Settings(fallback_notify=["json://127.0.0.1:9/queue"], **settings),
                       AlertsMetrics.create(registry), AlertPolicy(spike=SpikePolicy(window_minutes=10, threshold=3)),
                       clock=lambda: NOW, handoff=handed.append)
    return svc, handed, registry


def test_a_batch_of_new_cases_costs_the_same_few_calls_whatever_its_size() -> None:
    for size in (1, 50):
        store = fake_store()
        svc, handed, registry = service(store)
        events = svc.handle_batch([negative(f"c-{i}-{uuid.uuid4().hex[:4]}") for i in range(size)])
        assert len(events) == size and len(handed) == size
        assert registry.get_sample_value("alerts_raised_total", {"priority": "normal"}) == size
        calls = (store.cases.calls + store.outbox.calls + store.directory.calls  # type: ignore[attr-defined]
                 + store.spikes.calls)  # type: ignore[attr-defined]
        # Reads: links, customers' cases, threads, accounts, CSMs, cases waiting on these customers;
        # writes: links, cases, updates, outbox.
        assert sum(calls.values()) == 10, calls


def test_a_redelivered_batch_writes_nothing_twice_and_hands_over_no_page_again() -> None:
    store = fake_store()
    svc, handed, registry = service(store)
    batch = [negative("c-1"), negative("c-1"), negative("c-2")]
    first = svc.handle_batch(batch)
    cases: FakeCases = store.cases  # type: ignore[assignment]
    outbox: FakeOutbox = store.outbox  # type: ignore[assignment]
    assert len(cases.cases) == 2 and len(outbox.deliveries) == 2 and len(handed) == 2
    again = svc.handle_batch(batch)
    assert [e.event_id for e in again] == [e.event_id for e in first]  # the same announcements
    assert len(cases.cases) == 2 and len(outbox.deliveries) == 2 and len(handed) == 2
    assert {c.event_count for c in cases.cases.values()} == {1, 2}
    assert registry.get_sample_value("alerts_raised_total", {"priority": "normal"}) == 2
    assert registry.get_sample_value("alert_case_updates_total") == 1


def test_a_crisis_is_raised_once_and_then_counting_stops_for_the_window() -> None:
    store = fake_store()
    svc, handed, _ = service(store, manager_notify=["json://127.0.0.1:9/manager"])
    events = svc.handle_batch([negative(None, public=True) for _ in range(4)])
    crises = [c for c in store.cases.find(status="open", csm=None, need=None, limit=10) if c.kind == "crisis"]
    assert len(crises) == 1 and crises[0].event_count == 4
    assert [e.alert_id for e in events].count(crises[0].id) == 1
    assert any(d["url"] == "json://127.0.0.1:9/manager" for d in handed)
    counted = store.spikes.calls["count"]  # type: ignore[attr-defined]
    svc.handle_batch([negative(None, public=True)])
    assert store.spikes.calls["count"] == counted  # type: ignore[attr-defined]
    assert len(store.spikes.items) == 5  # type: ignore[attr-defined]  # still recorded for later windows
    assert len([c for c in store.cases.find(status="open", csm=None, need=None, limit=10) if c.kind == "crisis"]) == 1


def test_a_redelivered_public_negative_counts_once_towards_a_spike() -> None:
    store = fake_store()
    svc, _, _ = service(store)
    items = [negative(None, public=True) for _ in range(3)]
    svc.handle_batch(items)
    svc.handle_batch(items)  # redelivered: their links are there, so they are not counted again
    svc.handle_batch([items[0], negative(None, public=True)])
    assert len(store.spikes.items) == 4  # type: ignore[attr-defined]
    [crisis] = [c for c in store.cases.find(status="open", csm=None, need=None, limit=10) if c.kind == "crisis"]
    assert crisis.event_count == 4  # past the threshold of 3 with the fourth distinct item, not before


def test_an_erased_customer_late_item_is_dropped_and_counted() -> None:
    store = fake_store()
    svc, handed, registry = service(store)
    svc.erase_customer("c-1", NOW - timedelta(seconds=10))
    assert svc.handle_batch([negative("c-1", ingested_at=NOW - timedelta(seconds=11))]) == []
    assert registry.get_sample_value("alerts_erased_skipped_total") == 1 and handed == []
    assert not svc.set_tier("c-1", "gold", NOW - timedelta(seconds=11))
    assert svc.set_tier("c-1", "gold", NOW)


def test_the_insights_consumers_gather_for_the_configured_wait(monkeypatch: Any) -> None:
    """The read model's batch wait comes from the settings (a burst's aggregates are written once per
    wait, not once per second), and the case consumer keeps its own short batch."""
    import alerts.agents as agents

    waits: dict[str, float | None] = {}
    sizes: dict[str, int | None] = {}

    def capture(app: Any, spec: Any, name: str, handler: Any, dlq: Any, **kwargs: Any) -> None:
        waits[name] = kwargs.get("within_s")
        sizes[name] = kwargs.get("batch_size")

    def nothing(*_: Any, **__: Any) -> None:
        return None

    monkeypatch.setattr(agents, "register_batch_agent", capture)
    monkeypatch.setattr(agents, "register_agent", nothing)
    monkeypatch.setattr(agents, "EventSink", nothing)
    svc, _, _ = service(fake_store(), insights_batch_wait_s=7.5, scored_batch_wait_s=0.3, scored_batch_size=150)
    agents.register_agents(object(), svc, svc.metrics)  # type: ignore[arg-type]
    assert waits["alerts.insights"] == 7.5 and waits["alerts.insights_surveys"] == 7.5
    # The cases' consumer has its own batch, not the read model's wait.
    assert (waits["alerts.handle_scored"], sizes["alerts.handle_scored"]) == (0.3, 150)


def test_the_insights_batch_wait_is_bounded() -> None:
    import pytest
    from pydantic import ValidationError

    assert Settings().insights_batch_wait_s == 5.0
    for bad in (0, -1, 61):
        with pytest.raises(ValidationError, match="insights_batch_wait_s"):
            Settings(insights_batch_wait_s=bad)


def test_the_scored_batch_is_bounded() -> None:
    import pytest
    from pydantic import ValidationError

    assert (Settings().scored_batch_size, Settings().scored_batch_wait_s) == (200, 0.1)
    for field, bad in (("scored_batch_size", 0), ("scored_batch_size", 1001), ("scored_batch_wait_s", 0),
                       ("scored_batch_wait_s", 5.1)):
        with pytest.raises(ValidationError, match=field):
            Settings(**{field: bad})
