"""Each service's OpenAPI document tells the truth: schemathesis, with every one of its checks, finds
nothing against ``/openapi.json`` of the four apps, called in-process with an admin token.

Generated requests fit the document (positive) or break it (negative); every response is checked:
status codes and content types documented, bodies matching their schemas, valid data accepted and
invalid data refused, authentication enforced. Fakes stand in for the database and the broker.

Driven through hypothesis directly (as tests/integration/test_ingest.py does): schemathesis' lazy
pytest loader does not work with pytest 9 yet. ``FUZZ_EXAMPLES`` examples per operation and mode
(``make fuzz`` sets 2000; capped at 200 here, which already covers every documented shape, and at 10
for the sentiment model, which scores each text for real).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from prometheus_client import CollectorRegistry
from schemathesis.checks import CHECKS, is_check_class, load_all_checks
from schemathesis.core.failures import Failure, FailureGroup

from tests.unit.shared.fake_tokens import MemoryTokenStore

KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
EXAMPLES = min(int(os.environ.get("FUZZ_EXAMPLES", "25")), 200)
#: The real model scores every generated text: a few are enough to check the document.
SENTIMENT_EXAMPLES = min(EXAMPLES, 10)

#: Checks left out for one operation, each with the reason it is a false positive there: rules that
#: JSON Schema cannot state. Every other check still runs on these operations.
EXCLUDED: dict[tuple[str, str], str] = {
    ("PUT /v1/csms/{csm_id}", "positive_data_acceptance"):
        "notify[] must be a URL Apprise understands: each scheme's plugin has its own rules (tokens, hosts, "
        "ports), which no JSON Schema pattern states; any string is schema-valid, few are Apprise URLs.",
    ("POST /v1/customers/{customer_id}/redeem", "positive_data_acceptance"):
        "the idempotency key is required in the body (idempotency_key) OR the Idempotency-Key header: OpenAPI "
        "cannot require one of a header and a body field, so both are documented optional, and a request "
        "with neither is schema-valid but refused with a 422 naming the key.",
}


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


def fuzz(operation: Any, mode: schemathesis.GenerationMode, examples: int, checks: list[Any],
         tried: dict[str, int], failures: dict[str, str]) -> None:
    """``examples`` generated requests for ``operation`` in ``mode``, each response run through ``checks``
    (less the operation's exclusions); counts into ``tried``, each distinct failure into ``failures``."""
    label = f"{operation.label} ({mode.value})"
    excluded = [c for c in checks if (operation.label, c.__name__) in EXCLUDED]

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        tried[label] = tried.get(label, 0) + 1
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
        for description in found:
            failures.setdefault(f"{operation.label}: {description}", label)

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
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = all_checks()
    tried: dict[str, int] = {}
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    started = time.monotonic()
    for operation, mode in itertools.product(operations, schemathesis.GenerationMode):
        fuzz(operation, mode, examples, checks, tried, failures)
    took = time.monotonic() - started
    print(f"\n{service}: {sum(tried.values())} requests over {len(tried)} operation/mode pairs "  # noqa: T201
          f"in {took:.1f}s, {len(checks)} checks, {len(failures)} distinct failures")
    assert operations and sum(tried.values()) >= len(operations) * min(examples, 5)
    assert not failures, "\n".join(f"{failure}  [{where}]" for failure, where in sorted(failures.items()))
