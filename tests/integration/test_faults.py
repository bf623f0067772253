"""Real failures: a worker killed with SIGKILL mid-stream (or mid-send) loses nothing and counts nothing
twice."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from feedback_tools.devstack import EmbeddedStack
from tests.helpers import Receiver, alerts_for, eventually, negative, uid

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


def test_alerts_worker_killed_between_sending_a_page_and_recording_it_resends_it_under_the_same_key(
    api: Api, stack: EmbeddedStack, receiver: Receiver
) -> None:
    """The one window no outbox closes: the page reached the CSM's endpoint, the worker died before it
    could record that. Its successor sends the same delivery once the lease runs out, under the same
    Idempotency-Key, so a receiver honouring the key shows it once; the outbox then says sent."""
    csm, customer = uid("csm"), uid("cust")
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Lela", "notify": [receiver.url(csm)]}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm}).raise_for_status()
    killed = threading.Event()

    def kill_the_sender(request: dict[str, Any]) -> None:
        if request["path"] == f"/{csm}" and not killed.is_set():
            stack.children["alerts"].kill()  # SIGKILL before the endpoint answers
            killed.set()

    receiver.on_request = kill_the_sender
    negative(api, customer, "Das Paket kam zerrissen an und niemand antwortet auf meine E-Mails. Furchtbar!")
    eventually(killed.is_set, timeout_s=60)
    stack.start_service("alerts")
    stack.wait_ready(["alerts"])

    def keys() -> list[str]:
        return [r["headers"].get("idempotency-key", "") for r in receiver.received if r["path"] == f"/{csm}"]

    eventually(lambda: len(keys()) >= 2, timeout_s=60)
    [case] = alerts_for(api, customer)

    def page() -> dict[str, Any] | None:
        deliveries = api("alerts").get(f"/v1/alerts/{case['alert_id']}").json()["deliveries"]
        [apprise] = [d for d in deliveries if d["kind"] == "apprise"]
        return apprise if apprise["status"] == "sent" else None

    delivery = eventually(page, timeout_s=30)
    time.sleep(2)  # nothing more follows the recorded send
    first, *resent = keys()
    assert first and resent == [first], keys()
    titles = [r["body"]["title"] for r in receiver.received if r["path"] == f"/{csm}"]
    assert not titles[0].startswith("(possible repeat)") and titles[1] == "(possible repeat) " + titles[0]
    assert delivery["attempts"] == 2
    assert case["paged"] is True
