"""The security issue's black-box checks on the running stack: crafted and oversized inputs are refused
or bounded, nothing sent after them is lost, and the services stay healthy meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from feedback_tools.devstack import EmbeddedStack
from tests.helpers import eventually, uid

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]


def test_a_crafted_review_is_refused_and_the_thirty_after_it_all_become_cases(api: Api) -> None:
    crafted = {"source": "google", "external_id": uid("crafted"), "customer_id": uid("c"), "rating": 1,
               "text": "\x01" * 83_500}
    refused = api("ingest").post("/v1/reviews", json=crafted)
    assert refused.status_code == 413 and "limit" in refused.json()["detail"]
    customers = [uid("after") for _ in range(30)]
    for customer in customers:
        body = {"source": "google", "external_id": uid("r"), "customer_id": customer, "rating": 1,
                "text": "The order is two weeks late and support does not answer. Terrible."}
        assert api("ingest").post("/v1/reviews", json=body).status_code == 202

    def cased() -> set[str]:
        listed = api("alerts").get("/v1/alerts", params={"limit": 500}).json()
        return {c["customer_id"] for c in listed} & set(customers)

    assert eventually(lambda: len(cased()) == 30 and cased(), timeout_s=90) == set(customers)


def test_a_100000_character_review_is_taken_and_the_services_stay_healthy(api: Api, stack: EmbeddedStack) -> None:
    slow: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                started = time.monotonic()
                client.get(f"{stack.config.service_url('alerts')}/healthz").raise_for_status()
                slow.append(time.monotonic() - started)
                time.sleep(0.1)

    watcher = threading.Thread(target=probe, daemon=True)
    watcher.start()
    try:
        customer = uid("long")
        text = "The blender broke on day one and nobody answers. " * 2100
        assert len(text) >= 100_000
        body = {"source": "google", "external_id": uid("r"), "customer_id": customer, "rating": 1,
                "text": text[:100_000]}
        assert api("ingest").post("/v1/reviews", json=body).status_code == 202
        eventually(lambda: [c for c in api("alerts").get("/v1/alerts", params={"limit": 500}).json()
                            if c["customer_id"] == customer], timeout_s=60)
        scored = api("sentiment").post("/v1/score", json={"text": text[:100_000]})
        assert scored.status_code == 200
        assert scored.json()["sentiment"]["truncated"] is True
        assert scored.json()["sentiment"]["scored_chars"] < 4096
    finally:
        stop.set()
        watcher.join(10)
    assert slow and max(slow) < 1.0, f"alerts /healthz took up to {max(slow):.2f} s"


def test_without_a_token_every_service_answers_401(stack: EmbeddedStack) -> None:
    paths = {"ingest": [("POST", "/v1/reviews")], "sentiment": [("POST", "/v1/score")],
             "alerts": [("GET", "/"), ("GET", "/v1/alerts"), ("GET", "/v1/alerts/x")],
             "loyalty": [("GET", "/v1/customers/c-1/points")]}
    with httpx.Client(timeout=10) as client:
        for service, calls in paths.items():
            for method, path in calls:
                answer = client.request(method, f"{stack.config.service_url(service)}{path}", json={})
                assert answer.status_code == 401, (service, path, answer.status_code)


def test_an_inward_notify_url_is_refused_with_the_reason(api: Api) -> None:
    for url, reason in (("json://169.254.169.254/latest/meta-data/", "link-local"),
                        ("json://10.0.0.5/hook", "private")):
        answer = api("alerts").put(f"/v1/csms/{uid('csm')}", json={"name": "X", "notify": [url]})
        assert answer.status_code == 422 and reason in answer.text
