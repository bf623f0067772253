"""Who sees and works which case: roles on the alerts API, CSMs limited to their own cases and the
fallback queue's, and the inbox's sign-in (session cookie, CSRF token, Content-Security-Policy)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.config import Settings
from alerts.domain import Case
from alerts.main import create_app
from alerts.sessions import COOKIE, CSRF_HEADER
from tests.unit.alerts.fakes import fake_store
from tests.unit.shared.fake_tokens import MemoryTokenStore

T = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def case(alert_id: str, csm_id: str) -> Case:
    return Case(_id=alert_id, csm_id=csm_id, priority="high", created_at=T, updated_at=T,
                latest={"event_id": f"e-{alert_id}", "text": f"text of {alert_id}", "source": "google"})


@pytest.fixture
def world() -> tuple[TestClient, MemoryTokenStore, Any]:
    app = create_app(Settings(api_keys=["static-admin"]), CollectorRegistry(), stream=False)
    store = fake_store()
    store.cases.insert([case("a-own", "csm-1"), case("a-other", "csm-2"), case("a-queue", "fallback-queue")])
    app.state.store = store  # no lifespan: the fakes stand in for MongoDB
    tokens = MemoryTokenStore()
    app.state.authenticator.store = tokens
    return TestClient(app), tokens, store


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_csm_lists_only_its_own_cases_and_the_queues(world: Any) -> None:
    client, tokens, _ = world
    csm = bearer(tokens.token("csm", csm_id="csm-1"))
    listed = {c["alert_id"] for c in client.get("/v1/alerts", headers=csm).json()}
    assert listed == {"a-own", "a-queue"}
    # Asking for another CSM's cases by filter shows nothing, not their cases.
    assert client.get("/v1/alerts", params={"csm": "csm-2"}, headers=csm).json() == []


def test_another_csms_case_does_not_exist_for_a_csm(world: Any) -> None:
    client, tokens, _ = world
    csm = bearer(tokens.token("csm", csm_id="csm-1"))
    assert client.get("/v1/alerts/a-own", headers=csm).status_code == 200
    assert client.get("/v1/alerts/a-queue", headers=csm).status_code == 200
    assert client.get("/v1/alerts/a-other", headers=csm).status_code == 404
    assert client.post("/v1/alerts/a-other/ack", headers=csm).status_code == 404


def test_a_manager_reads_every_case_but_cannot_administer(world: Any) -> None:
    client, tokens, _ = world
    manager = bearer(tokens.token("manager"))
    listed = {c["alert_id"] for c in client.get("/v1/alerts", headers=manager).json()}
    assert listed == {"a-own", "a-other", "a-queue"}
    assert client.put("/v1/csms/csm-9", json={"name": "X"}, headers=manager).status_code == 403


@pytest.mark.parametrize("role", ["reader", "integration"])
def test_roles_without_cases_are_refused(world: Any, role: str) -> None:
    client, tokens, _ = world
    headers = bearer(tokens.token(role))
    response = client.get("/v1/alerts", headers=headers)
    assert response.status_code == 403 and "cases.read" in response.json()["detail"]


def test_only_an_admin_manages_csms(world: Any) -> None:
    client, tokens, store = world
    assert client.put("/v1/csms/csm-9", json={"name": "X"}, headers=bearer(tokens.token("csm", csm_id="c"))
                      ).status_code == 403
    assert client.put("/v1/csms/csm-9", json={"name": "X"}, headers=bearer(tokens.token("admin"))).status_code == 200
    assert "csm-9" in store.directory.csms_by_id(["csm-9"])


def test_a_revoked_token_is_refused(world: Any) -> None:
    client, tokens, _ = world
    token = tokens.token("manager")
    client.app.state.authenticator.cache_ttl_s = 0
    assert client.get("/v1/alerts", headers=bearer(token)).status_code == 200
    tokens.revoke(token.split("_")[1], T)
    assert client.get("/v1/alerts", headers=bearer(token)).status_code == 401


def sign_in(client: TestClient, token: str) -> str:
    """Sign in through the form; the CSRF token the inbox page carries."""
    response = client.post("/login", content=f"token={token}", follow_redirects=False,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    page = client.get("/")
    assert page.status_code == 200
    marker = 'name="csrf-token" content="'
    return page.text.split(marker, 1)[1].split('"', 1)[0]


def test_the_inbox_signs_in_with_a_token_and_shows_only_the_csms_cases(world: Any) -> None:
    client, tokens, _ = world
    sign_in(client, tokens.token("csm", csm_id="csm-1"))
    page = client.get("/")
    assert "text of a-own" in page.text and "text of a-queue" in page.text
    assert "text of a-other" not in page.text
    assert client.get("/static/inbox.js").status_code == 200


def test_the_inbox_page_has_no_inline_script_and_no_key(world: Any) -> None:
    client, tokens, _ = world
    sign_in(client, tokens.token("manager"))
    page = client.get("/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]
    assert "<script>" not in page.text and "onclick" not in page.text
    assert "localStorage" not in page.text and "dev-key" not in page.text
    assert "localStorage" not in client.get("/static/inbox.js").text


def test_a_state_change_with_the_cookie_needs_the_csrf_token(world: Any) -> None:
    client, tokens, store = world
    csrf = sign_in(client, tokens.token("csm", csm_id="csm-1"))
    refused = client.post("/v1/alerts/a-own/ack")
    assert refused.status_code == 403 and CSRF_HEADER in refused.json()["detail"]
    assert client.post("/v1/alerts/a-own/ack", headers={CSRF_HEADER: "forged"}).status_code == 403
    assert store.cases.get("a-own").status == "open"
    done = client.post("/v1/alerts/a-own/ack", headers={CSRF_HEADER: csrf})
    assert done.status_code == 200 and done.json()["status"] == "acknowledged"


def test_a_wrong_token_does_not_sign_in_and_a_forged_cookie_is_nobody(world: Any) -> None:
    client, _, _ = world
    response = client.post("/login", content="token=fbt_nope_nope", follow_redirects=False,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 401 and "not accepted" in response.text
    client.cookies.set(COOKIE, "eyJoIjoiYWJjIn0.forged")
    assert client.get("/v1/alerts").status_code == 401


def test_sign_out_ends_the_session(world: Any) -> None:
    client, tokens, _ = world
    csrf = sign_in(client, tokens.token("manager"))
    assert client.post("/logout", headers={CSRF_HEADER: csrf}).status_code == 204
    assert client.get("/v1/alerts").status_code == 401


def test_an_unknown_or_repeated_query_parameter_is_refused_not_ignored(world: Any) -> None:
    client, tokens, _ = world
    manager = bearer(tokens.token("manager"))
    typo = client.get("/v1/alerts?stauts=open", headers=manager)
    assert typo.status_code == 422 and typo.json()["detail"][0]["loc"] == ["query", "stauts"]
    twice = client.get("/v1/alerts?csm=csm-1&csm=csm-2", headers=manager)
    assert twice.status_code == 422 and "more than once" in twice.json()["detail"][0]["msg"]
    assert client.get("/v1/alerts?status=open&limit=5", headers=manager).status_code == 200
