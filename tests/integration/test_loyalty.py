"""Loyalty on the real stack: exact balances through a SIGKILL, one of two concurrent redeems, the review
bonus, tiers and thank-you messages."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import httpx
import pytest

from feedback_shared.topics import CUSTOMER_NOTIFICATIONS, LOYALTY_POINTS
from feedback_tools.devstack import EmbeddedStack
from tests.helpers import eventually, read_topic

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]


def points(api: Api, customer: str) -> dict[str, Any]:
    body: dict[str, Any] = api("loyalty").get(f"/v1/customers/{customer}/points", params={"limit": 500}).json()
    return body


def test_worker_killed_mid_stream_of_2000_events_leaves_every_balance_exact(api: Api, stack: EmbeddedStack) -> None:
    run = uuid.uuid4().hex[:6]
    customers = [f"k{run}-{i}" for i in range(20)]
    expected = dict.fromkeys(customers, 0)
    purchases, returns = [], []
    for c in customers:
        for n in range(1, 91):
            amount = Decimal(f"{5 + n % 37}.{n % 100:02d}")
            purchases.append({"type": "purchase", "order_id": f"{c}-o{n}", "customer_id": c, "amount": str(amount),
                              "currency": "EUR"})
            earned = int(amount.to_integral_value(rounding=ROUND_FLOOR)) if n >= 2 else 0
            expected[c] += earned
            if n % 9 == 0:
                returns.append({"type": "return", "order_id": f"{c}-o{n}", "customer_id": c, "amount": str(amount),
                                "currency": "EUR"})
                expected[c] -= earned
    events = purchases + returns
    assert len(events) == 2000

    ingest = api("ingest")
    for start in range(0, len(events), 500):
        body = ingest.post("/v1/batch", json={"items": events[start:start + 500]}).json()
        assert body["accepted"] == len(events[start:start + 500]), body

    eventually(lambda: points(api, customers[0])["balance"] > 0, timeout_s=60, interval_s=0.05)
    stack.children.pop("loyalty").kill()
    stack.start_service("loyalty")
    stack.wait_ready(["loyalty"])

    def settled() -> bool:
        return all(points(api, c)["balance"] == expected[c] for c in customers)

    eventually(settled, timeout_s=180, interval_s=1)
    for c in customers:
        body = points(api, c)
        assert body["balance"] == expected[c]
        assert sum(e["points"] for e in body["ledger"]) == expected[c]
        assert len({(e["order_id"], e["rule"]) for e in body["ledger"]}) == len(body["ledger"])


def test_two_concurrent_redeems_of_the_whole_balance_one_succeeds(api: Api) -> None:
    customer = f"redeem-{uuid.uuid4().hex[:8]}"
    for n, amount in enumerate(("10", "150.00")):
        api("ingest").post("/v1/purchases", json={"order_id": f"{customer}-{n}", "customer_id": customer,
                                                  "amount": amount, "currency": "EUR"}).raise_for_status()
    eventually(lambda: points(api, customer)["balance"] == 150, timeout_s=30)

    barrier = threading.Barrier(2)
    answers: list[httpx.Response] = []

    def redeem(key: str) -> None:
        with httpx.Client(base_url=str(api("loyalty").base_url), headers=dict(api("loyalty").headers)) as client:
            barrier.wait()
            answers.append(client.post(f"/v1/customers/{customer}/redeem",
                                       json={"points": 150, "reward": "gift_card", "idempotency_key": key}))

    threads = [threading.Thread(target=redeem, args=(f"k-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert "insufficient balance: 0 points, 150 requested" in refused.json()["detail"]
    body = points(api, customer)
    assert body["balance"] == 0
    assert [e["rule"] for e in body["ledger"]].count("redeem") == 1

    # The same key again returns the first result, and never redeems twice.
    winner = next(a for a in answers if a.status_code == 201).json()
    key = "k-0" if winner["entry_id"] == answers[0].json().get("entry_id") else "k-1"
    again = api("loyalty").post(f"/v1/customers/{customer}/redeem",
                                json={"points": 150, "reward": "gift_card", "idempotency_key": key})
    assert again.status_code in (200, 409)
    assert points(api, customer)["balance"] == 0
    no_key = api("loyalty").post(f"/v1/customers/{customer}/redeem", json={"points": 1})
    assert no_key.status_code == 422


def test_review_bonus_once_per_order_tier_change_and_a_thank_you_by_name(api: Api, stack: EmbeddedStack) -> None:
    customer = f"vip-{uuid.uuid4().hex[:8]}"
    api("alerts").put(f"/v1/accounts/{customer}", json={"preferred_name": "Ms. Abenova"}).raise_for_status()
    ingest = api("ingest")
    for n, amount in enumerate(("20", "600.00")):
        ingest.post("/v1/purchases", json={"order_id": f"{customer}-{n}", "customer_id": customer, "amount": amount,
                                           "currency": "KZT"}).raise_for_status()
    for external in ("first", "second"):  # two reviews of the same order: one bonus
        ingest.post("/v1/reviews", json={"source": "google", "external_id": f"{customer}-{external}",
                                         "customer_id": customer, "order_id": f"{customer}-1",
                                         "text": "Тапсырыс уақытында келді, рахмет!"}).raise_for_status()
    eventually(lambda: points(api, customer)["balance"] == 625, timeout_s=60)
    body = points(api, customer)
    assert sorted(e["rule"] for e in body["ledger"]) == ["repeat_purchase", "review_bonus"]
    assert body["tier"] == "silver"

    def announced() -> list[Any]:
        records = asyncio.run(read_topic(stack.config.bootstrap, LOYALTY_POINTS.name, timeout_s=3))
        return [LOYALTY_POINTS.decode(r.value) for r in records if customer.encode() == r.key]

    events = eventually(lambda: [e for e in announced() if e.event_type == "tier.changed"] and announced(),
                        timeout_s=30, interval_s=1)
    # At-least-once: a redelivered event may be announced again, always under the same event id.
    [tier] = {e.event_id: e for e in events if e.event_type == "tier.changed"}.values()
    assert (tier.previous_tier, tier.tier) == ("bronze", "silver")

    def thanks() -> list[Any]:
        records = asyncio.run(read_topic(stack.config.bootstrap, CUSTOMER_NOTIFICATIONS.name, timeout_s=3))
        decoded = [CUSTOMER_NOTIFICATIONS.decode(r.value) for r in records if customer.encode() == r.key]
        return [d for d in decoded if d.event_type == "customer.thanked"]

    messages = eventually(lambda: len(thanks()) >= 2 and thanks(), timeout_s=30, interval_s=1)
    assert all(m.addressed_to == "Ms. Abenova" for m in messages)
    assert any("600 points" in m.message for m in messages)
