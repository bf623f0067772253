"""End to end through the real broker and database: HTTP in, events through every service, effects out."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from feedback_shared.topics import (
    COMMERCE_EVENTS,
    DLQ_CONSUMER_HEADER,
    DLQ_ERROR_HEADER,
    FEEDBACK_RECEIVED,
    FEEDBACK_SCORED,
)
from feedback_tools.devstack import EmbeddedStack
from tests.helpers import Receiver, alerts_for, eventually, read_topic, uid

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]





def test_negative_review_becomes_one_alert_and_one_notification(api: Api, receiver: Receiver) -> None:
    customer = uid("cust")
    csm = uid("csm")
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Nino", "notify": [receiver.url(csm)]}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm, "tier": "gold",
                                                        "preferred_name": "Ms. Aliyeva"}).raise_for_status()
    review = {"source": "google", "external_id": uid("rev"), "customer_id": customer, "rating": 1,
              "text": "The blender broke after two days and nobody answers my emails. Unacceptable, refund me!"}

    started = time.monotonic()
    resp = api("ingest").post("/v1/reviews", json=review)
    assert resp.status_code == 202, resp.text
    event_id = resp.json()["event_id"]

    [alert] = eventually(lambda: alerts_for(api, customer), timeout_s=30)
    assert alert["csm_id"] == csm
    assert alert["status"] == "open"
    assert alert["priority"] in ("high", "critical")
    assert alert["latest"]["feedback_event_id"] == event_id
    assert alert["latest"]["sentiment"]["label"] == "negative"
    assert alert["latest"]["language"] == "en"

    [page] = eventually(lambda: receiver.bodies(csm), timeout_s=30)
    elapsed = time.monotonic() - started
    assert "Negative review from Ms. Aliyeva on google" in page["title"]
    assert "blender broke" in page["message"]
    assert elapsed < 10, f"review to notification took {elapsed:.1f}s"

    # Recorded sent as soon as the send returned (the receiver may answer a moment before).
    eventually(lambda: [d["status"] for d in api("alerts").get(f"/v1/alerts/{alert['alert_id']}").json()["deliveries"]
                        if d["kind"] == "apprise"] == ["sent"], timeout_s=10)

    # A repeat of the same review is a duplicate: same event id, no new case, no new page.
    again = api("ingest").post("/v1/reviews", json=review)
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": event_id}
    time.sleep(2)
    assert len(alerts_for(api, customer)) == 1
    assert len(receiver.bodies(csm)) == 1


def test_more_negatives_while_a_case_is_open_update_it_without_paging(api: Api, receiver: Receiver) -> None:
    customer = uid("cust")
    csm = uid("csm")
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Aram", "notify": [receiver.url(csm)]}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm}).raise_for_status()
    texts = ["Заказ опоздал на неделю, ужасный сервис.",
             "До сих пор никто не ответил, это возмутительно!"]
    for text in texts:
        body = {"source": "trustpilot", "external_id": uid("rev"), "customer_id": customer, "text": text}
        assert api("ingest").post("/v1/reviews", json=body).status_code == 202
    case = eventually(lambda: [a for a in alerts_for(api, customer) if a["event_count"] == 2], timeout_s=30)[0]
    assert case["latest"]["text"] == texts[1]
    assert len(alerts_for(api, customer)) == 1
    eventually(lambda: receiver.bodies(csm), timeout_s=20)
    time.sleep(1.5)
    assert len(receiver.bodies(csm)) == 1

    # The lifecycle refuses to skip the response, then moves on with timestamps.
    alerts = api("alerts")
    refused = alerts.post(f"/v1/alerts/{case['alert_id']}/resolve")
    assert refused.status_code == 409
    assert "cannot resolve a case that is open" in refused.json()["detail"]
    assert alerts.post(f"/v1/alerts/{case['alert_id']}/ack").json()["status"] == "acknowledged"
    assert alerts.post(f"/v1/alerts/{case['alert_id']}/respond").json()["status"] == "responded"
    resolved = alerts.post(f"/v1/alerts/{case['alert_id']}/resolve").json()
    assert resolved["status"] == "resolved"
    assert resolved["acknowledged_at"] <= resolved["responded_at"] <= resolved["resolved_at"]


def test_positive_review_is_scored_but_raises_no_alert(api: Api, stack: EmbeddedStack) -> None:
    customer = uid("cust")
    body = {"source": "google", "external_id": uid("rev"), "customer_id": customer, "rating": 5,
            "text": "Ürün harika, kargo çok hızlı geldi. Kesinlikle tekrar alışveriş yapacağım."}
    event_id = api("ingest").post("/v1/reviews", json=body).json()["event_id"]

    def scored() -> list[Any]:
        records = asyncio.run(read_topic(stack.config.bootstrap, FEEDBACK_SCORED.name, timeout_s=3))
        return [FEEDBACK_SCORED.decode(r.value) for r in records
                if str(FEEDBACK_SCORED.decode(r.value).feedback_event_id) == event_id]

    [event] = eventually(scored, timeout_s=30, interval_s=1)
    assert event.language == "tr"
    assert event.sentiment.label == "positive"
    assert event.feedback_type == "praise"
    assert event.customer_id == customer
    assert event.model_version
    assert alerts_for(api, customer) == []


def test_second_purchase_earns_points_and_a_return_reverses_them(api: Api) -> None:
    customer = uid("cust")
    ingest = api("ingest")
    for order, amount in ((uid("o"), "30.00"), (second := uid("o"), "120.50")):
        resp = ingest.post("/v1/purchases", json={"order_id": order, "customer_id": customer,
                                                  "amount": amount, "currency": "EUR"})
        assert resp.status_code == 202, resp.text

    def points() -> dict[str, Any] | None:
        body: dict[str, Any] = api("loyalty").get(f"/v1/customers/{customer}/points").json()
        return body if body["balance"] == 120 else None

    body = eventually(points, timeout_s=30)
    assert [(e["rule"], e["points"], e["order_id"]) for e in body["ledger"]] == [("repeat_purchase", 120, second)]

    assert ingest.post("/v1/returns", json={"order_id": second, "customer_id": customer, "amount": "120.50",
                                            "currency": "EUR"}).status_code == 202
    eventually(lambda: api("loyalty").get(f"/v1/customers/{customer}/points").json()["balance"] == 0, timeout_s=30)


def test_undecodable_messages_go_to_the_dead_letter_topic_with_the_reason(api: Api, stack: EmbeddedStack) -> None:
    poison = f"not json {uuid.uuid4()}".encode()
    invalid = b'{"event_type": "purchase.recorded", "order_id": "o", "customer_id": "c", "amount": "-5", "currency": "EUR"}'
    producer = KafkaProducer(bootstrap_servers=stack.config.bootstrap, acks="all")
    producer.send(FEEDBACK_RECEIVED.name, poison).get(timeout=10)
    producer.send(COMMERCE_EVENTS.name, invalid).get(timeout=10)
    producer.close()

    def dead_letters(topic: str, value: bytes) -> list[Any]:
        records = asyncio.run(read_topic(stack.config.bootstrap, topic, timeout_s=3))
        return [r for r in records if r.value == value]

    [dlq] = eventually(lambda: dead_letters(FEEDBACK_RECEIVED.dlq_name, poison), timeout_s=30, interval_s=1)
    headers = dict(dlq.headers)
    assert b"Invalid JSON" in headers[DLQ_ERROR_HEADER]
    # Each consumer of the topic dead-letters it with its name: loyalty's ledger and alerts' timeline.
    letters = eventually(lambda: len(found := dead_letters(COMMERCE_EVENTS.dlq_name, invalid)) == 2 and found,
                         timeout_s=30, interval_s=1)
    assert all(b"amount" in dict(dlq.headers)[DLQ_ERROR_HEADER] for dlq in letters)
    assert {dict(dlq.headers)[DLQ_CONSUMER_HEADER] for dlq in letters} == {b"loyalty.handle_commerce",
                                                                           b"alerts.timeline_commerce"}

    metrics = eventually(lambda: "feedback.received.v1" in (t := api("sentiment").get("/metrics/").text) and t)
    assert 'dlq_messages_total{topic="feedback.received.v1"}' in metrics


def test_erasure_removes_texts_and_accounts_and_anonymises_the_ledger(
    api: Api, stack: EmbeddedStack, receiver: Receiver
) -> None:
    from pymongo import MongoClient

    from loyalty.service import pseudonym

    customer = uid("forget")
    csm = uid("csm")
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Lena", "notify": [receiver.url(csm)]}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm, "preferred_name": "Mr. Karimov"}).raise_for_status()
    secret_text = f"My flat at Nizami 12 flooded because the washer leaked {uuid.uuid4().hex[:6]}. Awful!"
    ingest = api("ingest")
    assert ingest.post("/v1/reviews", json={"source": "google", "external_id": uid("r"), "customer_id": customer,
                                            "text": secret_text}).status_code == 202
    for order in (uid("o"), uid("o")):
        assert ingest.post("/v1/purchases", json={"order_id": order, "customer_id": customer, "amount": "40",
                                                  "currency": "EUR"}).status_code == 202
    [case] = eventually(lambda: alerts_for(api, customer), timeout_s=30)
    eventually(lambda: api("loyalty").get(f"/v1/customers/{customer}/points").json()["balance"] == 40,
               timeout_s=30)

    resp = ingest.delete(f"/v1/customers/{customer}")
    assert resp.status_code == 202
    assert resp.json()["ingest_records_removed"] == 3

    def erased() -> dict[str, Any] | None:
        doc: dict[str, Any] = api("alerts").get(f"/v1/alerts/{case['alert_id']}").json()
        return doc if doc.get("erased_at") else None

    doc = eventually(erased, timeout_s=30)
    assert doc["customer_id"] is None
    assert secret_text not in json.dumps(doc)
    assert doc["priority"] == case["priority"] and doc["event_count"] == 1  # counts survive
    eventually(lambda: api("loyalty").get(f"/v1/customers/{customer}/points").json()["ledger"] == [], timeout_s=30)

    with MongoClient(stack.config.mongo_url, serverSelectionTimeoutMS=5000) as mongo:
        # The account is gone; a mark with the request's time stays, to drop items from before it.
        [mark] = mongo["alerts"]["accounts"].find({"_id": customer})
        assert set(mark) == {"_id", "erased_at"}
        assert mongo["alerts"]["outbox"].count_documents({"body": {"$regex": "Nizami"}}) == 0
        kept = list(mongo["loyalty"]["ledger"].find({"customer_id": pseudonym(customer)}))
        assert [e["points"] for e in kept] == [40]  # the amount stays for audit, under a pseudonym
        assert mongo["loyalty"]["ledger"].count_documents({"customer_id": customer}) == 0


def test_contact_details_in_feedback_never_reach_logs_or_metrics(api: Api, stack: EmbeddedStack) -> None:
    email, phone = f"{uid('jane')}@example.com", "+994 50 987 65 43"
    customer = uid("cust")
    body = {"source": "google", "external_id": uid("r"), "customer_id": customer,
            "text": f"Broken again and nobody calls back! Write to {email} or call {phone}."}
    assert api("ingest").post("/v1/reviews", json=body).status_code == 202
    eventually(lambda: alerts_for(api, customer), timeout_s=30)
    for path in stack.log_dir.glob("*.log"):
        text = path.read_text(errors="replace")
        assert email not in text, path.name
        assert phone not in text, path.name
    for name in ("ingest", "sentiment", "alerts", "loyalty"):
        metrics = api(name).get("/metrics/").text
        assert email not in metrics and customer not in metrics


def test_each_consumer_exports_its_lag_per_partition(api: Api) -> None:
    """consumer_lag{group,topic,partition}: end offset minus the group's committed offset, drained to 0
    once the stream is idle."""
    review = {"source": "google", "external_id": f"lag-{uuid.uuid4()}", "customer_id": f"lag-{uuid.uuid4()}",
              "text": "Fine, nothing special."}
    assert api("ingest").post("/v1/reviews", json=review).status_code == 202
    expected = {"sentiment": "feedback.received.v1", "alerts": "feedback.scored.v1", "loyalty": "feedback.scored.v1"}

    def most_behind(service: str) -> float | None:
        """The largest lag over the partitions of the service's main topic (None until it reports)."""
        text = api(service).get("/metrics/").text
        found = [float(m.group(1)) for m in re.finditer(
            r'^consumer_lag\{group="[^"]+-' + service + r'",partition="\d+",topic="' + re.escape(expected[service])
            + r'"\} (\S+)$', text, re.M)]
        return max(found) if found else None

    for service in expected:
        # Idle again after the review: every partition of the topic is committed up to its end.
        eventually(lambda s=service: most_behind(s) == 0, timeout_s=60)  # type: ignore[misc]
