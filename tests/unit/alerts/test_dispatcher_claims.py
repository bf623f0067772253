"""The dispatcher's database cost: its own new deliveries come handed over (no query), it looks for
due ones at most once per poll interval for all its workers, and it renews every lease it holds in one
call."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from alerts.config import Settings
from alerts.domain import Delivery
from alerts.metrics import AlertsMetrics
from alerts.notifier import Dispatcher
from tests.unit.alerts.fakes import FakeOutbox

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def page(n: int) -> Delivery:
    return Delivery(f"d-{n}", "apprise", f"a-{n}", "json://93.184.215.14/x", title="t", body="b")


def dispatcher(outbox: FakeOutbox, sent: list[str], poll_s: float = 60.0) -> Dispatcher:
    return Dispatcher(outbox, Settings(delivery_poll_s=poll_s), AlertsMetrics.create(CollectorRegistry()),
                      send=lambda url, _t, _b: sent.append(url), clock=lambda: NOW)


def hand_over(d: Dispatcher, outbox: FakeOutbox, deliveries: list[Delivery]) -> None:
    for doc in outbox.enqueue(deliveries, NOW, claim_for=timedelta(seconds=15)):
        d.hand_over(doc)


def test_handed_over_pages_go_out_with_one_look_for_due_ones_per_poll_interval() -> None:
    outbox, sent = FakeOutbox(), []
    d = dispatcher(outbox, sent)

    async def burst() -> None:
        for batch in range(20):  # an incident: a batch of new pages, then a wake-up, twenty times
            hand_over(d, outbox, [page(batch * 5 + i) for i in range(5)])
            await d.drain()

    asyncio.run(burst())
    assert len(sent) == 100
    assert all(doc["status"] == "sent" for doc in outbox.deliveries.values())
    assert outbox.calls["claim_due"] == 1  # not one per wake-up (twenty), nor per worker


def test_a_retry_due_is_claimed_at_the_next_poll_interval() -> None:
    outbox, sent = FakeOutbox(), []
    d = dispatcher(outbox, sent, poll_s=0.05)
    asyncio.run(d.drain())  # the first look: nothing due
    outbox.enqueue([page(1)], NOW - timedelta(seconds=1))  # pending, as after a failed attempt's backoff
    assert asyncio.run(d.drain()) == 0 and sent == []  # within the interval: no look
    asyncio.run(asyncio.sleep(0.06))
    assert asyncio.run(d.drain()) == 1 and len(sent) == 1
    assert outbox.calls["claim_due"] == 2


def test_a_backlog_of_due_pages_is_claimed_batch_after_batch_at_once() -> None:
    outbox, sent = FakeOutbox(), []
    d = dispatcher(outbox, sent)
    outbox.enqueue([page(n) for n in range(35)], NOW - timedelta(seconds=1))  # released by another process
    assert asyncio.run(d.drain()) == 35
    assert len(sent) == 35
    assert outbox.calls["claim_due"] == 4  # 10, 10, 10, then 5 (fewer than asked: nothing more due)


def test_every_lease_held_is_renewed_in_one_call_and_one_lost_is_given_up() -> None:
    outbox, sent = FakeOutbox(), []
    d = dispatcher(outbox, sent)
    hand_over(d, outbox, [page(1), page(2), page(3)])
    # Another worker took d-2 over (counting an attempt); its lease happens to end when ours would.
    outbox.deliveries["d-2"].update(lease_until=NOW + timedelta(seconds=15), attempts=2)
    assert d.renew_leases() == (2, 1)
    assert outbox.calls["renew_leases"] == 1
    assert outbox.deliveries["d-1"]["lease_until"] == NOW + timedelta(seconds=15)
    asyncio.run(d.drain())
    assert sorted(doc["_id"] for doc in outbox.deliveries.values() if doc["status"] == "sent") == ["d-1", "d-3"]
