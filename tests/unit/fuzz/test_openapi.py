"""Each service's OpenAPI document tells the truth: schemathesis, with every one of its checks, finds
nothing against ``/openapi.json`` of the four apps, called in-process with an admin token.

Generated requests fit the document (positive) or break it (negative); every response is checked:
status codes and content types documented, bodies matching their schemas, valid data accepted and
invalid data refused, authentication enforced. Fakes stand in for the database and the broker.

Driven through hypothesis directly (as tests/integration/test_ingest.py does): schemathesis' lazy
pytest loader does not work with pytest 9 yet. ``FUZZ_EXAMPLES`` examples per operation and mode
(``make fuzz`` sets 2000; capped at 200 here, which already covers every documented shape, and at 10
for the sentiment model in the unit suite, which scores each text for real).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from prometheus_client import CollectorRegistry
from schemathesis.checks import CHECKS, is_check_class, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup

from tests.unit.fuzz.fuzzing import FUZZ_EXAMPLES, tried
from tests.unit.shared.fake_tokens import MemoryTokenStore

KEY = "fuzz-key"
#: The project's schemathesis settings (the statuses that count as refusing invalid data).
CONFIG = Path(__file__).resolve().parents[3] / "schemathesis.toml"
AUTH = {"Authorization": f"Bearer {KEY}"}
EXAMPLES = min(FUZZ_EXAMPLES, 200)
#: In the unit suite (no ``FUZZ_RANDOM=1``), the same examples every run: a fixed, reproducible sample
#: that CI can rely on. ``make fuzz`` draws new ones each run, many more, to explore.
DERANDOMIZE = os.environ.get("FUZZ_RANDOM") != "1"
#: The real model scores every generated text: in the unit suite a few are enough to check the document;
#: ``make fuzz`` takes as many as for the other services (300 took 13 s). Ten a run never drew the
#: over-long text of astral characters that found the body limit below the largest valid request.
SENTIMENT_EXAMPLES = min(EXAMPLES, 10) if DERANDOMIZE else EXAMPLES

@contextlib.asynccontextmanager
async def _no_lifespan(_: FastAPI) -> AsyncIterator[None]:
    # The app's own lifespan connects to MongoDB and Kafka; app.state holds fakes instead.
    yield


class ReachableMongo:
    """Answers /readyz's ping (``feedback_shared.mongo.reachable``)."""

    class admin:
        @staticmethod
        def command(_: str) -> dict[str, Any]:
            return {"ok": 1}


def _without_lifespan(app: FastAPI) -> FastAPI:
    app.router.lifespan_context = _no_lifespan
    app.state.authenticator.store = MemoryTokenStore()
    app.state.mongo = ReachableMongo()
    return app


def ingest_app() -> FastAPI:
    from ingest.config import Settings
    from ingest.main import create_app
    from tests.unit.ingest.fakes import FakePublisher, FakeRepo

    # With fakes, ingest's lifespan reaches no database or broker: it runs as it is.
    app = create_app(Settings(api_keys=[KEY]), CollectorRegistry(), repo=FakeRepo(), publisher=FakePublisher())
    app.state.authenticator.store = MemoryTokenStore()
    return app


def alerts_app() -> FastAPI:
    from alerts.config import Settings
    from alerts.main import create_app
    from alerts.metrics import AlertsMetrics
    from tests.unit.alerts.fakes import fake_store

    app = _without_lifespan(create_app(Settings(api_keys=[KEY]), CollectorRegistry(), stream=False))
    app.state.store = fake_store()
    app.state.metrics = AlertsMetrics.create(CollectorRegistry())
    return app


def loyalty_app() -> FastAPI:
    from loyalty.config import Settings
    from loyalty.main import create_app
    from loyalty.metrics import LoyaltyMetrics
    from loyalty.service import LoyaltyService
    from tests.unit.loyalty.fakes import FakeLoyaltyStore

    config = Settings(api_keys=[KEY])
    app = _without_lifespan(create_app(config, CollectorRegistry(), stream=False))
    app.state.store = store = FakeLoyaltyStore()
    app.state.service = LoyaltyService(store, config.rules(), LoyaltyMetrics.create(CollectorRegistry()))  # type: ignore[arg-type]
    app.state.publisher = None
    return app


def sentiment_app() -> FastAPI:
    from sentiment.config import Settings
    from sentiment.main import create_app

    return _without_lifespan(create_app(Settings(api_keys=[KEY]), CollectorRegistry(), stream=False))


APPS: dict[str, tuple[Callable[[], FastAPI], int]] = {
    "ingest": (ingest_app, EXAMPLES),
    "alerts": (alerts_app, EXAMPLES),
    "loyalty": (loyalty_app, EXAMPLES),
    "sentiment": (sentiment_app, SENTIMENT_EXAMPLES),
}


def all_checks() -> list[Any]:
    """Every check schemathesis registers (``--checks all``)."""
    load_all_checks()
    return [check for check in CHECKS.get_all() if not is_check_class(check)]


def _describe(failure: Failure) -> str:
    first_line = (failure.message or "").strip().splitlines()[:1]
    return f"{'/'.join(failure.checks) or type(failure).__name__}: {failure.title}" + (
        f" ({first_line[0][:160]})" if first_line else "")


def fuzz(service: str, operation: Any, mode: schemathesis.GenerationMode, examples: int, checks: list[Any],
         requests: dict[str, int], failures: dict[str, str]) -> None:
    """``examples`` generated requests for ``operation`` in ``mode``, each response run through ``checks``
    (less those schemathesis.toml turns off for the operation, with the reason); counts into ``requests`` (and the fuzz summary), each distinct failure into ``failures``."""
    label = f"{operation.label} ({mode.value})"
    # Checks passed by name run whatever the config says: leave out those it turns off for this operation.
    config = operation.schema.config.checks_config_for(operation=operation)
    excluded = [check for check in checks if not config.get_by_name(name=check.__name__).enabled]

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=DERANDOMIZE)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        requests[label] = requests.get(label, 0) + 1
        tried(f"openapi.{service} (schemathesis)")
        found: list[str] = []
        # In the case too, not only on the wire: a negative case that dropped the token gets it back, and
        # the checks must judge the request as sent.
        case.headers = {**(case.headers or {}), **AUTH}
        try:
            case.call_and_validate(headers=AUTH, checks=checks, excluded_checks=excluded)
        except FailureGroup as group:
            found = [_describe(failure) for failure in group.exceptions]
        except Failure as failure:
            found = [_describe(failure)]
        except Exception as exc:  # in-process, an unhandled error arrives here instead of as a 500
            found = [f"unhandled {type(exc).__name__}: {str(exc)[:160]}"]
        example = f"query={case.query!r} body={case.body!r}"[:300]
        for description in found:
            failures.setdefault(f"{operation.label}: {description}", f"{label}; e.g. {example}")

    try:
        run()
    except Unsatisfiable:
        # An operation without inputs (GET /healthz) has no invalid variant to generate.
        assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label


@pytest.mark.parametrize("service", sorted(APPS))
def test_schemathesis_finds_nothing(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if service != "ingest":  # ingest's fakes answer for its broker; the others ask Kafka itself
        monkeypatch.setattr(f"{service}.main.broker_reachable", lambda _: True)
    build, examples = APPS[service]
    app = build()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=SchemathesisConfig.from_path(CONFIG),
                                            headers=AUTH)
    checks = all_checks()
    requests: dict[str, int] = {}
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    started = time.monotonic()
    for operation, mode in itertools.product(operations, schemathesis.GenerationMode):
        fuzz(service, operation, mode, examples, checks, requests, failures)
    took = time.monotonic() - started
    print(f"\n{service}: {sum(requests.values())} requests over {len(requests)} operation/mode pairs "  # noqa: T201
          f"in {took:.1f}s, {len(checks)} checks, {len(failures)} distinct failures")
    assert operations and sum(requests.values()) >= len(operations) * min(examples, 5)
    assert not failures, "\n".join(f"{failure}  [{where}]" for failure, where in sorted(failures.items()))


# ---- the examples the issue named, pinned (the fuzzer finds them only by chance) ----------------------
def _ingest_client() -> Any:
    from fastapi.testclient import TestClient

    return TestClient(ingest_app(), headers=AUTH)


@pytest.mark.parametrize("occurred_at", [0, 1700000000, 1.5, "0", "1700000000", "2026-11-01 09:30:00Z",
                                         "2026-11-01T09:30Z", True])
def test_a_timestamp_is_rfc_3339_text_only(occurred_at: Any) -> None:
    with _ingest_client() as client:
        body = {"source": "google", "external_id": f"r-{occurred_at!r}", "text": "late", "occurred_at": occurred_at}
        response = client.post("/v1/reviews", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", "occurred_at"]


def test_an_rfc_3339_timestamp_is_accepted() -> None:
    with _ingest_client() as client:
        for i, at in enumerate(["2026-11-01T09:30:00Z", "2026-11-01t09:30:00.25+01:00"]):
            body = {"source": "google", "external_id": f"ok-{i}", "text": "late", "occurred_at": at}
            assert client.post("/v1/reviews", json=body).status_code == 202, at


@pytest.mark.parametrize(("amount", "status"), [
    ("19.90", 202), (19.9, 202), (0, 202), ("0.0001", 202), (0.30000000000000004, 202), ("9999999999.9999", 202),
    ("", 422), ("1e3", 422), (" 19.90", 422), ("19.90001", 422), ("-1", 422), (-0.01, 422), (1e10, 422),
    (True, 422), ("NaN", 422),
])
def test_an_amount_is_accepted_exactly_as_documented(amount: Any, status: int) -> None:
    from ingest.schemas import PurchaseIn

    documented = PurchaseIn.model_json_schema()["properties"]["amount"]["anyOf"]
    assert {"type": "number", "minimum": 0, "maximum": 9999999999.9999} in documented
    with _ingest_client() as client:
        body = {"order_id": f"o-{amount!r}", "customer_id": "c-1", "amount": amount, "currency": "EUR",
                "items": [{"sku": "s", "price": amount}]}
        response = client.post("/v1/purchases", json=body)
    assert response.status_code == status, response.text


def test_a_float_amount_is_rounded_to_four_places() -> None:
    from ingest.schemas import PurchaseIn

    body = {"order_id": "o", "customer_id": "c", "amount": 0.1 + 0.2, "currency": "EUR"}
    assert str(PurchaseIn.model_validate(body).amount) == "0.3000"


def test_the_complaint_forms_one_contact_rule_is_in_its_schema() -> None:
    from ingest.schemas import ComplaintIn

    schema = _ingest_client().app.openapi()["components"]["schemas"]["ComplaintIn"]
    assert [branch["required"] for branch in schema["anyOf"]] == [["customer_id"], ["email"], ["phone"]]
    assert ComplaintIn.model_json_schema()["anyOf"] == schema["anyOf"]
    with _ingest_client() as client:
        assert client.post("/v1/feedback", json={"text": "broken", "email": None}).status_code == 422
        assert client.post("/v1/feedback", json={"text": "broken", "email": "a@b.test"}).status_code == 202


def test_every_body_route_documents_400_and_every_protected_one_the_bearer_scheme() -> None:
    for service, (build, _) in APPS.items():
        document = build().openapi()
        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer", service
        for path, methods in document["paths"].items():
            for method, operation in methods.items():
                if path in ("/healthz", "/readyz") or path.startswith("/v1/webhooks"):
                    assert "security" not in operation, (service, method, path)
                    continue
                assert operation["security"] == [{"bearer": []}], (service, method, path)
                assert ("requestBody" in operation) == ("400" in operation["responses"]), (service, method, path)
                assert {"401", "403"} <= set(operation["responses"]), (service, method, path)


def test_a_sources_epoch_timestamp_is_converted_by_its_adapter() -> None:
    from feedback_shared.adapters import generic_item

    assert generic_item({"id": "1", "text": "x", "timestamp": 0})["occurred_at"] == "1970-01-01T00:00:00+00:00"
    assert generic_item({"id": "1", "text": "x", "created_at": "1700000000"})["occurred_at"] == (
        "2023-11-14T22:13:20+00:00")
    assert generic_item({"id": "1", "text": "x", "date": "2026-11-01 09:30:00+01:00"})["occurred_at"] == (
        "2026-11-01T09:30:00+01:00")
    assert generic_item({"id": "1", "text": "x", "date": "yesterday"})["occurred_at"] == "yesterday"


# ---- what `schemathesis run --checks all` found against the running stack, pinned ----------------------
REVIEW_BODY = {"source": "google", "external_id": "r-1", "text": "late"}
PURCHASE_BODY = {"order_id": "o-1", "customer_id": "c-1", "amount": "9.90", "currency": "EUR"}


@pytest.mark.parametrize(("service", "method", "path", "body", "field"), [
    ("ingest", "POST", "/v1/reviews", {**REVIEW_BODY, "is_public": 0}, "is_public"),
    ("ingest", "POST", "/v1/mentions", {**REVIEW_BODY, "source": "x", "is_public": 1}, "is_public"),
    ("ingest", "POST", "/v1/suggestions", {"text": "more colours", "is_public": "true"}, "is_public"),
    ("ingest", "POST", "/v1/surveys", {"survey_id": "s", "response_id": "r", "nps": False}, "nps"),
    ("ingest", "POST", "/v1/reviews", {**REVIEW_BODY, "rating": "5"}, "rating"),
    ("ingest", "POST", "/v1/purchases", {**PURCHASE_BODY, "items": [{"sku": "s", "quantity": 10**7}]}, "quantity"),
    ("alerts", "POST", "/v1/alerts/a-1/replies", {"text": "We are sorry", "override": 0}, "override"),
    ("alerts", "PUT", "/v1/accounts/c-1", {"consent": {"marketing": 1}}, "marketing"),
    ("alerts", "PUT", "/v1/accounts/c-1", {"consent": {"first.name": True}}, "consent"),
    ("alerts", "PUT", "/v1/accounts/c-1", {"consent": {"$set": True}}, "consent"),
    ("alerts", "GET", "/v1/insights?to=0", None, "to"),
    ("alerts", "GET", "/v1/insights/items?from=0&to=86400", None, "from"),
    ("loyalty", "GET", "/v1/customers/c-1/points?offset=48965628476229412427841667072", None, "offset"),
    ("loyalty", "POST", "/v1/customers/c-1/redeem", {"points": 1}, "idempotency_key"),
    ("loyalty", "POST", "/v1/customers/c-1/redeem", {"points": True, "idempotency_key": "k-1"}, "points"),
])
def test_a_value_the_document_does_not_allow_is_a_422_naming_it(service: str, method: str, path: str,
                                                                 body: Any, field: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic's lax mode took 0 for false, false for 0, "5" for 5 and "0" for a date; an offset past
    2**63 and a consent named "a.b" reached MongoDB (500s); the redeem key was optional in the document and
    required in the code."""
    from fastapi.testclient import TestClient

    if service != "ingest":
        monkeypatch.setattr(f"{service}.main.broker_reachable", lambda _: True)
    with TestClient(APPS[service][0](), headers=AUTH) as client:
        response = client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert field in [str(part) for part in response.json()["detail"][0]["loc"]], response.text


def test_a_whole_number_written_with_a_fraction_of_zero_is_a_whole_number() -> None:
    """5.0 is an integer in JSON Schema: refusing it would refuse what the document allows."""
    with _ingest_client() as client:
        assert client.post("/v1/reviews", json={**REVIEW_BODY, "rating": 5.0}).status_code == 202
        assert client.post("/v1/reviews", json={**REVIEW_BODY, "external_id": "r-2", "rating": 4.5}).status_code == 422


def test_sources_that_write_scores_and_flags_as_text_are_converted_by_the_adapter() -> None:
    """A CSV cell or a feed writes "5" and "true": the adapters turn them into the JSON the models take."""
    from feedback_shared.adapters import generic_item

    item = generic_item({"id": "1", "text": "x", "rating": " 5", "is_public": "False"})
    assert item["rating"] == 5 and item["is_public"] is False
    survey = generic_item({"type": "survey", "survey_id": "s", "id": "1", "nps": "9", "csat": "x"})
    assert survey["nps"] == 9 and survey["csat"] == "x"
