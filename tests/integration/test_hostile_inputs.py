"""The security issue's black-box checks on the running stack: crafted and oversized inputs are refused
or bounded, nothing sent after them is lost, and the services stay healthy meanwhile."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from feedback_shared.topics import ALL_TOPICS
from feedback_tools.devstack import EmbeddedStack
from tests.helpers import Receiver, alerts_for, eventually, negative, read_topic, uid

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


def test_without_a_token_every_service_answers_401(api: Api, stack: EmbeddedStack) -> None:
    """Every route each service documents, its document and viewer, and the inbox's pages; only the probes
    answer, and /metrics where the stack makes it public for Prometheus (as make run does)."""
    pages = {"alerts": ["/", "/insights", "/cases/x"]}
    with httpx.Client(timeout=10) as client:
        for service in ("ingest", "sentiment", "alerts", "loyalty"):
            document = api(service).get("/openapi.json").json()
            calls = [(method.upper(), re.sub(r"\{[^}]+\}", "x", path))
                     for path, operations in document["paths"].items() for method in operations
                     if path not in ("/healthz", "/readyz")]
            calls += [("GET", path) for path in ["/openapi.json", "/docs", *pages.get(service, [])]]
            assert len(calls) >= 3, service
            for method, path in calls:
                answer = client.request(method, f"{stack.config.service_url(service)}{path}",
                                        json={} if method in ("POST", "PUT") else None)
                assert answer.status_code == 401, (service, method, path, answer.status_code)
            assert client.get(f"{stack.config.service_url(service)}/healthz").status_code == 200


def test_an_inward_notify_url_is_refused_with_the_reason(api: Api) -> None:
    for url, reason in (("json://169.254.169.254/latest/meta-data/", "link-local"),
                        ("json://10.0.0.5/hook", "private")):
        answer = api("alerts").put(f"/v1/csms/{uid('csm')}", json={"name": "X", "notify": [url]})
        assert answer.status_code == 422 and reason in answer.text


#: The issue's two spellings, and the digits of the card in any spelling (separators of spaces, dots or
#: dashes between the groups).
CARD_SPELLINGS = ("4111 1111 1111 1111 123", "4111.1111.1111.1111")
UNMASKED_CARD = re.compile(r"4111\W{0,8}1111\W{0,8}1111\W{0,8}1111")


def test_a_card_number_is_masked_in_the_case_the_page_and_every_topic(api: Api, stack: EmbeddedStack,
                                                                      receiver: Receiver) -> None:
    csm, customer, marker = uid("csm"), uid("card"), uid("marker")
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Cara", "notify": [receiver.url(csm)]}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm}).raise_for_status()
    for spelling in CARD_SPELLINGS:
        negative(api, customer, f"You charged my card {spelling} twice and nobody answers. Terrible! {marker}")

    def case_with_both() -> dict[str, Any] | None:
        listed = [c for c in api("alerts").get("/v1/alerts", params={"limit": 500}).json()
                  if c["customer_id"] == customer]
        case = api("alerts").get(f"/v1/alerts/{listed[0]['alert_id']}").text if listed else ""
        return json.loads(case) if case.count(marker) >= 2 else None

    case = eventually(case_with_both, timeout_s=60)
    pages = eventually(lambda: receiver.bodies(csm), timeout_s=30)
    texts = {"case": json.dumps(case), "page": json.dumps(pages)}
    assert texts["case"].count("[card ****1111]") >= 2 and "[card ****1111]" in texts["page"]

    for spec in ALL_TOPICS:
        for topic in (spec.name, spec.dlq_name):
            records = asyncio.run(read_topic(stack.config.bootstrap, topic, timeout_s=3))
            texts[topic] = "\n".join(r.value.decode("utf-8", "replace") for r in records
                                     if marker.encode() in (r.value or b""))
    carried = [where for where, text in texts.items() if marker in text]
    assert {"case", "page", "feedback.received.v1", "feedback.scored.v1"} <= set(carried), carried
    leaked = {where: UNMASKED_CARD.findall(text) for where, text in texts.items() if UNMASKED_CARD.search(text)}
    assert not leaked, leaked


def test_a_csm_token_lists_its_own_cases_and_the_queue_and_gets_404_for_another_csms(api: Api,
                                                                                      stack: EmbeddedStack) -> None:
    from tests.integration.test_inbox_browser import csm_token

    mine, theirs = uid("csm"), uid("csm")
    own, other, unrouted = uid("own"), uid("other"), uid("queue")
    for csm in (mine, theirs):
        api("alerts").put(f"/v1/csms/{csm}", json={"name": csm}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{own}", json={"csm_id": mine}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{other}", json={"csm_id": theirs}).raise_for_status()
    for customer in (own, other, unrouted):  # no account: the fallback queue's
        negative(api, customer, "The parcel came broken and support never answers. Awful.")
    cases = {c: eventually(lambda c=c: alerts_for(api, c), timeout_s=60)[0] for c in (own, other, unrouted)}
    assert cases[unrouted]["csm_id"] == "fallback-queue" and cases[other]["csm_id"] == theirs

    with httpx.Client(base_url=stack.config.service_url("alerts"), timeout=20,
                      headers={"Authorization": f"Bearer {csm_token(stack, mine)}"}) as client:
        listed = client.get("/v1/alerts", params={"limit": 500}).json()
        assert {own, unrouted} <= {c["customer_id"] for c in listed}
        assert {c["csm_id"] for c in listed} <= {mine, "fallback-queue"}
        assert client.get("/v1/alerts", params={"csm": theirs}).json() == []
        assert client.get(f"/v1/alerts/{cases[own]['alert_id']}").status_code == 200
        assert client.get(f"/v1/alerts/{cases[unrouted]['alert_id']}").status_code == 200
        theirs_case = cases[other]["alert_id"]
        assert client.get(f"/v1/alerts/{theirs_case}").status_code == 404
        assert client.post(f"/v1/alerts/{theirs_case}/ack").status_code == 404
    assert api("alerts").get(f"/v1/alerts/{theirs_case}").json()["status"] == "open"
