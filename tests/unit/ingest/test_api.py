"""The ingest API with in-memory fakes behind its repository and publisher interfaces."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from feedback_shared.events import FeedbackReceived
from feedback_shared.topics import COMMERCE_EVENTS, CUSTOMER_ERASURE, FEEDBACK_RECEIVED
from feedback_shared.webhooks import signed_headers
from ingest.config import Settings
from ingest.main import create_app
from tests.unit.ingest.fakes import FakePublisher, FakeRepo

AUTH = {"Authorization": "Bearer test-key"}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def repo() -> FakeRepo:
    return FakeRepo()


@pytest.fixture
def client(publisher: FakePublisher, repo: FakeRepo, registry: CollectorRegistry) -> Iterator[TestClient]:
    settings = Settings(api_keys=["test-key"], max_body_bytes=200_000, retry_after_s=7,
                        webhook_secrets={"trustpilot": SecretStr(WEBHOOK_SECRET)})
    app = create_app(settings, registry, repo=repo, publisher=publisher)
    with TestClient(app) as c:
        yield c


REVIEW = {"source": "google", "external_id": "g-1", "customer_id": "c-1", "rating": 1,
          "text": "Cafe\u0301 was cold and the staff were rude"}


def test_review_is_accepted_published_and_nfc_normalised(client: TestClient, publisher: FakePublisher) -> None:
    resp = client.post("/v1/reviews", json=REVIEW, headers=AUTH)
    assert resp.status_code == 202
    assert resp.json()["status"] == "accepted"
    [(topic, event)] = publisher.sent
    assert topic == FEEDBACK_RECEIVED.name
    assert isinstance(event, FeedbackReceived)
    assert str(event.event_id) == resp.json()["event_id"]
    assert event.text.startswith("Café ")
    assert event.text_original == REVIEW["text"]
    assert event.is_public is True and event.kind == "review"


def test_the_accepted_log_line_carries_the_ids_as_fields(client: TestClient, publisher: FakePublisher,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ingest.service"):
        resp = client.post("/v1/reviews", json=REVIEW, headers=AUTH)
    [(_, event)] = publisher.sent
    [record] = [r for r in caplog.records if r.getMessage() == "accepted"]
    assert record.event_id == resp.json()["event_id"] == str(event.event_id)  # type: ignore[attr-defined]
    assert record.trace_id == event.trace_id  # type: ignore[attr-defined]
    assert record.topic == FEEDBACK_RECEIVED.name  # type: ignore[attr-defined]


def test_same_source_and_external_id_is_a_duplicate(client: TestClient, publisher: FakePublisher,
                                                    registry: CollectorRegistry) -> None:
    first = client.post("/v1/reviews", json=REVIEW, headers=AUTH)
    second = client.post("/v1/reviews", json={**REVIEW, "text": "edited"}, headers=AUTH)
    assert second.status_code == 200
    assert second.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    assert len(publisher.sent) == 1
    assert registry.get_sample_value("feedback_ingested_total", {"source": "google", "kind": "review"}) == 1


def test_broker_down_is_503_with_retry_after_and_retry_keeps_the_event_id(
    client: TestClient, publisher: FakePublisher, registry: CollectorRegistry
) -> None:
    publisher.down = True
    resp = client.post("/v1/reviews", json=REVIEW, headers=AUTH)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "7"
    assert "nothing was accepted" in resp.json()["detail"]
    assert registry.get_sample_value("feedback_rejected_total", {"reason": "broker_unavailable"}) == 1
    publisher.down = False
    retry = client.post("/v1/reviews", json=REVIEW, headers=AUTH)
    assert retry.status_code == 202
    assert len(publisher.sent) == 1


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, 401), ({"Authorization": "Token test-key"}, 401), ({"Authorization": "Bearer wrong"}, 401)],
)
def test_writes_need_a_token(client: TestClient, publisher: FakePublisher, headers: dict[str, str],
                             code: int) -> None:
    resp = client.post("/v1/reviews", json=REVIEW, headers=headers)
    assert resp.status_code == code
    assert "token" in resp.json()["detail"].lower() or "Bearer" in resp.json()["detail"]
    assert publisher.sent == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**REVIEW, "rating": 9}, "rating"),
        ({**REVIEW, "text": ""}, "text"),
        ({k: v for k, v in REVIEW.items() if k != "external_id"}, "external_id"),
        ({**REVIEW, "colour": "blue"}, "colour"),
        ({**REVIEW, "source": "Not A Slug!"}, "source"),
    ],
)
def test_invalid_input_is_422_naming_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    resp = client.post("/v1/reviews", json=body, headers=AUTH)
    assert resp.status_code == 422
    assert any(field in err["loc"] for err in resp.json()["detail"])


def test_oversized_body_is_413(client: TestClient, publisher: FakePublisher) -> None:
    resp = client.post("/v1/reviews", json={**REVIEW, "text": "x" * 200_001}, headers=AUTH)
    assert resp.status_code == 413
    assert "larger than 200000 bytes" in resp.json()["detail"]
    assert publisher.sent == []


@pytest.mark.parametrize("spelling", ["4111 1111 1111 1111", "4111 1111 1111 1111 123", "4111.1111.1111.1111",
                                      "4111-1111-1111-1111 12/27", "4111  1111\t1111 1111"])
def test_card_numbers_are_masked_before_publishing(client: TestClient, publisher: FakePublisher,
                                                   spelling: str) -> None:
    client.post("/v1/reviews", json={**REVIEW, "text": f"charged {spelling} twice!"}, headers=AUTH)
    [(_, event)] = publisher.sent
    assert isinstance(event, FeedbackReceived)
    assert spelling not in event.text and "4111111111111111" not in "".join(filter(str.isdigit, event.text))
    assert "[card ****1111]" in event.text and " 123" not in event.text and "12/27" not in event.text


def test_complaint_form_needs_one_contact_and_never_publishes_it(client: TestClient,
                                                                 publisher: FakePublisher) -> None:
    missing = client.post("/v1/feedback", json={"text": "nobody called me back"}, headers=AUTH)
    assert missing.status_code == 422
    assert "customer_id, email or phone" in str(missing.json()["detail"])
    ok = client.post("/v1/feedback", json={"text": "nobody called me back", "email": "Jane@Example.com"},
                     headers=AUTH)
    assert ok.status_code == 202
    [(_, event)] = publisher.sent
    assert isinstance(event, FeedbackReceived)
    assert event.customer_id is not None and event.customer_id.startswith("anon-")
    assert "example.com" not in FEEDBACK_RECEIVED.encode(event).decode().lower()


def test_purchase_and_return_go_to_the_commerce_topic(client: TestClient, publisher: FakePublisher) -> None:
    body = {"order_id": "o-1", "customer_id": "c-1", "amount": "19.99", "currency": "EUR"}
    assert client.post("/v1/purchases", json=body, headers=AUTH).status_code == 202
    assert client.post("/v1/purchases", json=body, headers=AUTH).status_code == 200
    assert client.post("/v1/returns", json=body, headers=AUTH).status_code == 202
    assert [topic for topic, _ in publisher.sent] == [COMMERCE_EVENTS.name] * 2
    assert [e.event_type for _, e in publisher.sent] == ["purchase.recorded", "order.returned"]  # type: ignore[attr-defined]


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert "feedback_rejected_total" in client.get("/metrics/", headers=AUTH).text


def test_dev_key_is_refused_outside_development() -> None:
    with pytest.raises(ValueError, match="development key"):
        Settings(environment="production", api_keys=["dev-key"])


def test_batch_gives_per_item_results(client: TestClient, publisher: FakePublisher) -> None:
    items = [
        {"type": "review", **REVIEW},
        {"type": "mention", "source": "x", "external_id": "t-1", "text": "@shop where is my parcel?"},
        {"type": "review", **REVIEW},  # the same review again in the same batch
        {"type": "purchase", "order_id": "o-9", "customer_id": "c-1", "amount": "5", "currency": "eur"},
        {"type": "gift", "text": "?"},
        {"type": "return", "order_id": "o-9", "customer_id": "c-1", "amount": "5", "currency": "EUR"},
    ]
    resp = client.post("/v1/batch", json={"items": items}, headers=AUTH)
    assert resp.status_code == 200
    body = resp.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["accepted", "accepted", "duplicate", "rejected", "rejected", "accepted"]
    assert body["results"][2]["event_id"] == body["results"][0]["event_id"]
    assert body["results"][3]["errors"][0]["loc"] == ["currency"]
    assert body["results"][4]["errors"][0]["loc"] == ["type"]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (3, 1, 2)
    assert len(publisher.sent) == 3
    again = client.post("/v1/batch", json={"items": items[:2]}, headers=AUTH).json()
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]


def test_batch_limits_and_outage(client: TestClient, publisher: FakePublisher) -> None:
    too_many = client.post("/v1/batch", json={"items": [{"type": "review"}] * 1001}, headers=AUTH)
    assert too_many.status_code == 422
    assert client.post("/v1/batch", json={"items": []}, headers=AUTH).status_code == 422
    publisher.down = True
    resp = client.post("/v1/batch", json={"items": [{"type": "review", **REVIEW}]}, headers=AUTH)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "7"
    assert resp.json()["results"][0]["status"] == "unavailable"


def test_database_down_is_503_per_item_and_nothing_is_published(
    client: TestClient, publisher: FakePublisher, repo: FakeRepo
) -> None:
    # Found by make chaos: a batch during a database outage answered 500 instead of 503.
    repo.down = True
    items = [{"type": "review", **REVIEW}, {"type": "review", **REVIEW, "external_id": "g-2"},
             {"type": "review", **REVIEW}]
    resp = client.post("/v1/batch", json={"items": items}, headers=AUTH)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "7"
    assert [r["status"] for r in resp.json()["results"]] == ["unavailable"] * 3
    assert "database unreachable" in resp.json()["results"][0]["errors"][0]["msg"]
    single = client.post("/v1/reviews", json=REVIEW, headers=AUTH)
    assert single.status_code == 503
    assert publisher.sent == []
    repo.down = False
    assert client.post("/v1/batch", json={"items": items}, headers=AUTH).json()["accepted"] == 2


def _webhook(client: TestClient, payload: object, *, secret: str = WEBHOOK_SECRET, age_s: int = 0,
             source: str = "trustpilot") -> Any:
    body = json.dumps(payload).encode()
    headers = signed_headers(secret, f"msg-{uuid.uuid4()}", body, timestamp=int(time.time()) - age_s)
    return client.post(f"/v1/webhooks/{source}", content=body, headers={**headers, "Content-Type": "application/json"})


def test_signed_webhook_maps_the_native_shape(client: TestClient, publisher: FakePublisher) -> None:
    native = {"id": "tp-77", "stars": 1, "title": "Never again", "content": "Parcel lost, no answer.",
              "user": {"name": "Giorgi"}, "link": "https://example.org/r/77", "created_at": "2026-11-20T10:00:00Z"}
    resp = _webhook(client, native)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 1
    [(_, event)] = publisher.sent
    assert isinstance(event, FeedbackReceived)
    assert (event.source, event.external_id, event.rating, event.author) == ("trustpilot", "tp-77", 1, "Giorgi")
    assert event.text == "Never again\nParcel lost, no answer."
    assert event.occurred_at.isoformat() == "2026-11-20T10:00:00+00:00"
    assert _webhook(client, {"items": [native]}).json()["duplicates"] == 1


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        ({"secret": "whsec_" + base64.b64encode(b"another-secret-another-secret!!").decode()}, 401, "does not match"),
        ({"age_s": 3600}, 401, "tolerance"),
        ({"source": "google"}, 401, "no webhook is configured"),
    ],
)
def test_webhook_refuses_bad_signatures_replays_and_unknown_sources(
    client: TestClient, publisher: FakePublisher, kwargs: dict[str, Any], code: int, message: str
) -> None:
    resp = _webhook(client, {"id": "1", "text": "hello"}, **kwargs)
    assert resp.status_code == code
    assert message in resp.json()["detail"]
    assert publisher.sent == []


def test_webhook_without_signature_headers_is_401(client: TestClient) -> None:
    resp = client.post("/v1/webhooks/trustpilot", json={"id": "1", "text": "hi"})
    assert resp.status_code == 401
    assert "missing header" in resp.json()["detail"]


def test_erasure_publishes_and_forgets(client: TestClient, publisher: FakePublisher) -> None:
    client.post("/v1/reviews", json=REVIEW, headers=AUTH)
    resp = client.delete("/v1/customers/c-1", headers=AUTH)
    assert resp.status_code == 202
    assert resp.json()["ingest_records_removed"] == 1
    assert publisher.sent[-1][0] == CUSTOMER_ERASURE.name
    assert client.delete("/v1/customers/c-1").status_code == 401
