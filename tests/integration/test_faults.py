"""Real failures: a worker killed with SIGKILL mid-stream loses nothing and counts nothing twice."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from feedback_shared.devstack import EmbeddedStack
from tests.helpers import eventually

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]


def test_loyalty_worker_killed_mid_stream_credits_every_purchase_exactly_once(
    api: Api, stack: EmbeddedStack
) -> None:
    run = uuid.uuid4().hex[:8]
    customers = [f"kill-{run}-{i}" for i in range(4)]
    orders_per_customer = 25
    purchases = [
        {"order_id": f"{c}-o{n}", "customer_id": c, "amount": f"{10 + n}.75", "currency": "EUR"}
        for n in range(1, orders_per_customer + 1) for c in customers
    ]
    # First purchase earns nothing; each later one earns floor(amount) points.
    expected = sum(10 + n for n in range(2, orders_per_customer + 1))

    def post(body: dict[str, str]) -> int:
        return api("ingest").post("/v1/purchases", json=body).status_code

    def balance(customer: str) -> int:
        return int(api("loyalty").get(f"/v1/customers/{customer}/points").json()["balance"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(post, purchases))
    assert statuses == [202] * len(purchases)

    # Kill the worker once it has started crediting, but before it can have finished.
    eventually(lambda: balance(customers[0]) > 0, timeout_s=30, interval_s=0.05)
    stack.children.pop("loyalty").kill()

    # Redeliver everything the dead worker had not committed: a new worker, same consumer group.
    stack.start_service("loyalty")
    stack.wait_ready(["loyalty"])
    for customer in customers:
        eventually(lambda c=customer: balance(c) == expected or None, timeout_s=60)  # type: ignore[misc]
    # And it stays exact: nothing arrives late and credits again.
    for customer in customers:
        body = api("loyalty").get(f"/v1/customers/{customer}/points").json()
        assert body["balance"] == expected
        assert len(body["ledger"]) == orders_per_customer - 1
        assert len({e["order_id"] for e in body["ledger"]}) == orders_per_customer - 1
