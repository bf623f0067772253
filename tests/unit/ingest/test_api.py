"""The ingest API with in-memory fakes behind its repository and publisher interfaces."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from feedback_shared.errors import DependencyUnavailable
from feedback_shared.events import Event, FeedbackReceived
from feedback_shared.topics import COMMERCE_EVENTS, FEEDBACK_RECEIVED, TopicSpec
from ingest.config import Settings
from ingest.main import create_app
from ingest.repository import Claim

AUTH = {"Authorization": "Bearer test-key"}


class FakeRepo:
    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}

    def claim(self, source: str, external_id: str, event_id: uuid.UUID, kind: str) -> Claim:
        doc = self.docs.setdefault((source, external_id), {"event_id": event_id, "status": "pending"})
        return Claim(doc["event_id"], doc["status"])

    def mark_published(self, source: str, external_id: str) -> None:
        self.docs[(source, external_id)]["status"] = "published"


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Event]] = []
        self.down = False

    def publish(self, spec: TopicSpec[Any], event: Event) -> float:
        if self.down:
            raise DependencyUnavailable("broker did not acknowledge: KafkaTimeoutError")
        self.sent.append((spec.name, event))
        return 0.001


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def client(publisher: FakePublisher, registry: CollectorRegistry) -> Iterator[TestClient]:
    settings = Settings(api_keys=["test-key"], max_body_bytes=10_000, retry_after_s=7)
    app = create_app(settings, registry, repo=FakeRepo(), publisher=publisher)
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
    [({}, 401), ({"Authorization": "Token test-key"}, 401), ({"Authorization": "Bearer wrong"}, 403)],
)
def test_writes_need_an_api_key(client: TestClient, publisher: FakePublisher, headers: dict[str, str],
                                code: int) -> None:
    resp = client.post("/v1/reviews", json=REVIEW, headers=headers)
    assert resp.status_code == code
    assert "API key" in resp.json()["detail"]
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
    resp = client.post("/v1/reviews", json={**REVIEW, "text": "x" * 20_000}, headers=AUTH)
    assert resp.status_code == 413
    assert "larger than 10000 bytes" in resp.json()["detail"]
    assert publisher.sent == []


def test_card_numbers_are_masked_before_publishing(client: TestClient, publisher: FakePublisher) -> None:
    client.post("/v1/reviews", json={**REVIEW, "text": "charged 4111 1111 1111 1111 twice!"}, headers=AUTH)
    [(_, event)] = publisher.sent
    assert isinstance(event, FeedbackReceived)
    assert "4111 1111 1111 1111" not in event.text
    assert "[card ****1111]" in event.text


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
    assert "feedback_rejected_total" in client.get("/metrics/").text


def test_dev_key_is_refused_outside_development() -> None:
    with pytest.raises(ValueError, match="development key"):
        Settings(environment="production", api_keys=["dev-key"])
