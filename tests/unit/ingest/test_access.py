"""An integration's token writes for its own sources only, and purchases and returns only with
commerce; erasure is for admins."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from ingest.config import Settings
from ingest.main import create_app
from tests.unit.ingest.fakes import FakePublisher, FakeRepo
from tests.unit.shared.fake_tokens import MemoryTokenStore

REVIEW = {"source": "google", "external_id": "g-1", "customer_id": "c-1", "rating": 1, "text": "Cold and late."}
PURCHASE = {"order_id": "o-1", "customer_id": "c-1", "amount": 10, "currency": "EUR"}


@pytest.fixture
def world() -> tuple[TestClient, MemoryTokenStore, FakePublisher]:
    publisher = FakePublisher()
    registry = CollectorRegistry()
    app = create_app(Settings(api_keys=["k"]), registry, repo=FakeRepo(), publisher=publisher)
    tokens = MemoryTokenStore()
    app.state.authenticator.store = tokens
    client = TestClient(app)
    client.__enter__()
    app.state.registry = registry
    return client, tokens, publisher


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_integration_writes_for_its_own_source_only(world: Any) -> None:
    client, tokens, publisher = world
    google = bearer(tokens.token("integration", sources=("google",)))
    assert client.post("/v1/reviews", json=REVIEW, headers=google).status_code == 202
    refused = client.post("/v1/reviews", json={**REVIEW, "source": "trustpilot", "external_id": "t-1"}, headers=google)
    assert refused.status_code == 403 and "trustpilot" in refused.json()["detail"]
    assert len(publisher.sent) == 1


def test_commerce_needs_its_own_permission(world: Any) -> None:
    client, tokens, publisher = world
    plain = bearer(tokens.token("integration"))
    refused = client.post("/v1/purchases", json=PURCHASE, headers=plain)
    assert refused.status_code == 403 and "commerce" in refused.json()["detail"]
    assert publisher.sent == []
    shop = bearer(tokens.token("integration", sources=("shop",), commerce=True))  # orders name no source
    assert client.post("/v1/purchases", json=PURCHASE, headers=shop).status_code == 202


def test_a_batch_rejects_the_items_a_token_may_not_write_and_keeps_the_rest(world: Any) -> None:
    client, tokens, publisher = world
    google = bearer(tokens.token("integration", sources=("google",)))
    items = [{"type": "review", **REVIEW}, {"type": "purchase", **PURCHASE},
             {"type": "review", **REVIEW, "source": "yelp", "external_id": "y-1"}]
    result = client.post("/v1/batch", json={"items": items}, headers=google).json()
    assert [r["status"] for r in result["results"]] == ["accepted", "rejected", "rejected"]
    assert result["results"][1]["errors"][0]["type"] == "forbidden"
    assert "commerce" in result["results"][1]["errors"][0]["msg"]
    assert "yelp" in result["results"][2]["errors"][0]["msg"]
    assert len(publisher.sent) == 1


@pytest.mark.parametrize("role", ["csm", "manager", "reader"])
def test_roles_other_than_integration_and_admin_cannot_write(world: Any, role: str) -> None:
    client, tokens, publisher = world
    scope = {"csm_id": "c"} if role == "csm" else {}
    response = client.post("/v1/reviews", json=REVIEW, headers=bearer(tokens.token(role, **scope)))
    assert response.status_code == 403
    assert publisher.sent == []


def test_erasure_is_for_admins(world: Any) -> None:
    client, tokens, publisher = world
    assert client.delete("/v1/customers/c-1", headers=bearer(tokens.token("integration"))).status_code == 403
    assert client.delete("/v1/customers/c-1", headers=bearer(tokens.token("admin"))).status_code == 202


def test_refusals_are_counted(world: Any) -> None:
    client, tokens, _ = world
    client.post("/v1/reviews", json=REVIEW)
    client.post("/v1/reviews", json=REVIEW, headers=bearer(tokens.token("reader")))
    registry = client.app.state.registry
    assert registry.get_sample_value("feedback_rejected_total", {"reason": "unauthorized"}) == 1
    assert registry.get_sample_value("feedback_rejected_total", {"reason": "forbidden"}) == 1


def test_an_event_too_large_for_the_stream_is_refused_with_413_naming_the_limit(world: Any) -> None:
    """83,500 control characters pass the text's length limit but serialise to over half a megabyte:
    accepted, the scored event would not fit a record, and the item was lost downstream."""
    client, tokens, publisher = world
    writer = bearer(tokens.token("integration"))
    crafted = {**REVIEW, "external_id": "crafted", "text": "\x01" * 83_500}
    refused = client.post("/v1/reviews", json=crafted, headers=writer)
    assert refused.status_code == 413
    assert "393216-byte limit" in refused.json()["detail"]
    batch = client.post("/v1/batch", json={"items": [{"type": "review", **crafted}]}, headers=writer).json()
    assert batch["results"][0]["errors"][0]["type"] == "too_large"
    assert publisher.sent == []
    # A long review of ordinary text is well within it.
    long_ok = {**REVIEW, "external_id": "long", "text": "The blender broke on day one. " * 3300}
    assert client.post("/v1/reviews", json=long_ok, headers=writer).status_code == 202
