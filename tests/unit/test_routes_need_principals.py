"""Every route of every service needs a principal, except the probes: called without a token, each
answers 401 (and ``/metrics`` too, unless an operator makes it public)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from sentiment.config import SCORE_BODY_BYTES

PROBES = {"/healthz", "/readyz"}
#: Authenticated by the source's signature instead (its own tests cover a missing or wrong one).
SIGNED = {"/v1/webhooks/{source}"}


def ingest_app(metrics_public: bool = False) -> FastAPI:
    from ingest.config import Settings
    from ingest.main import create_app
    from tests.unit.ingest.fakes import FakePublisher, FakeRepo

    return create_app(Settings(api_keys=["k"], auth={"metrics_public": metrics_public}), CollectorRegistry(),
                      repo=FakeRepo(), publisher=FakePublisher())


def alerts_app(metrics_public: bool = False) -> FastAPI:
    from alerts.config import Settings
    from alerts.main import create_app

    return create_app(Settings(api_keys=["k"], auth={"metrics_public": metrics_public}), CollectorRegistry(),
                      stream=False)


def loyalty_app(metrics_public: bool = False) -> FastAPI:
    from loyalty.config import Settings
    from loyalty.main import create_app

    return create_app(Settings(api_keys=["k"], auth={"metrics_public": metrics_public}), CollectorRegistry(),
                      stream=False)


def sentiment_app(metrics_public: bool = False) -> FastAPI:
    from sentiment.config import Settings
    from sentiment.main import create_app

    return create_app(Settings(api_keys=["k"], auth={"metrics_public": metrics_public}), CollectorRegistry(),
                      stream=False)


APPS: dict[str, Callable[..., FastAPI]] = {"ingest": ingest_app, "alerts": alerts_app, "loyalty": loyalty_app,
                                           "sentiment": sentiment_app}


def routes(app: FastAPI) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path not in PROBES | SIGNED:
            path = re.sub(r"\{[^}]+\}", "x", route.path)
            found += [(method, path) for method in sorted(route.methods or ())]
    return found


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_route_but_the_probes_answers_401_without_a_token(service: str) -> None:
    app = APPS[service]()
    found = routes(app)
    assert ("GET", "/metrics") in found
    # No lifespan: no database or broker is reached; authentication comes before anything else.
    client = TestClient(app)
    answers = {(method, path): client.request(method, path, json={}).status_code for method, path in found}
    assert answers and all(code == 401 for code in answers.values()), answers
    assert client.get("/healthz").status_code == 200  # (/readyz needs the lifespan's clients)
    assert client.request("GET", "/metrics", headers={"Authorization": "Bearer k"}).status_code == 200


@pytest.mark.parametrize("service", sorted(APPS))
def test_metrics_can_be_made_public(service: str) -> None:
    client = TestClient(APPS[service](metrics_public=True))
    assert client.get("/metrics").status_code == 200


def test_the_inbox_and_its_pages_are_behind_the_login() -> None:
    client = TestClient(alerts_app())
    for path in ("/", "/login", "/static/inbox.js"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert "Open cases" not in response.text
    assert '<form method="post" action="/login">' in client.get("/").text


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_service_has_a_body_size_limit(service: str) -> None:
    app = APPS[service]()
    # Sentiment's takes the largest valid score request, a text of characters outside the BMP, JSON-escaped.
    limit = {"ingest": 8_000_000, "sentiment": SCORE_BODY_BYTES}.get(service, 1_000_000)
    client = TestClient(app)
    response = client.post("/v1/anything", content=b"x" * (limit + 1), headers={"Authorization": "Bearer k"})
    assert response.status_code == 413 and str(limit) in response.json()["detail"]


@pytest.mark.parametrize("service", sorted(APPS))
def test_the_api_document_and_its_viewer_need_a_principal_too(service: str) -> None:
    """FastAPI serves /openapi.json, /docs and /redoc to anyone unless told otherwise."""
    client = TestClient(APPS[service]())
    for path in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"):
        assert client.get(path).status_code in (401, 404), path
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/docs").status_code == 401
    signed = {"Authorization": "Bearer k"}
    assert client.get("/openapi.json", headers=signed).json()["paths"]
    assert "swagger-ui" in client.get("/docs", headers=signed).text
