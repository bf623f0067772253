"""HTTP pieces every service uses: health and readiness probes, principals on every other route
(``feedback_shared.auth``), a body-size limit, and 422 answers that can always be written."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feedback_shared.auth import Authenticator, MongoTokenStore, current_principal, require
from feedback_shared.config import KeyedServiceSettings

#: The OpenAPI responses of every route that reads a JSON body, besides its own and the 422 FastAPI documents.
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body could not be read at all (not UTF-8 text)."},
    413: {"description": "The body is larger than the service's limit (max_body_bytes)."},
}


def health_router(readiness_checks: Mapping[str, Callable[[], bool]]) -> APIRouter:
    """``/healthz``: the process answers. ``/readyz``: every named dependency answers (else 503)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"description": "A dependency is unreachable; the body names which."}})
    def readyz() -> JSONResponse:
        """The broker and the database are reachable."""
        checks = {name: bool(check()) for name, check in readiness_checks.items()}
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    return router


class BodySizeLimit:
    """Refuse request bodies above ``max_bytes`` with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(send)
                return
        seen = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body larger than {self.max_bytes} bytes"},
            status_code=413,
        )
        await response({"type": "http"}, _empty_receive, send)


class _BodyTooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


def handle_validation_errors(app: FastAPI, on_invalid: Callable[[], None] | None = None) -> None:
    """422 with FastAPI's usual errors; when the echoed input cannot be written as JSON (a lone surrogate
    "\\ud800", NaN, Infinity), the same errors without their inputs, instead of a 500 (found by fuzzing)."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if on_invalid is not None:
            on_invalid()
        try:
            return await request_validation_exception_handler(request, exc)
        except ValueError:
            errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
            return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def add_operational_endpoints(app: FastAPI, registry: CollectorRegistry,
                              readiness_checks: Mapping[str, Callable[[], bool]],
                              settings: KeyedServiceSettings) -> Authenticator:
    """What every service serves besides its API: ``/healthz``, ``/readyz`` (``readiness_checks``),
    ``/metrics`` (for a ``reader`` token, or anyone where ``auth.metrics_public``), and 422s that name
    the field. Returns the app's authenticator (``app.state.authenticator``), whose token store
    ``connect_token_store`` sets once the database client exists."""
    app.include_router(health_router(readiness_checks))
    handle_validation_errors(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.state.authenticator = authenticator = Authenticator(
        None, settings.api_keys, cache_ttl_s=settings.auth.cache_ttl_s)
    guard = [] if settings.auth.metrics_public else [Depends(require("metrics.read"))]

    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # Both spellings: the scrape configs name /metrics/ (where the mounted exporter used to redirect).
    for path in ("/metrics", "/metrics/"):
        app.add_api_route(path, metrics, methods=["GET"], include_in_schema=False, dependencies=guard)
    guard_api_documents(app)
    return authenticator


#: What FastAPI serves to anyone by default: the OpenAPI document and its two viewers.
API_DOCUMENT_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


def guard_api_documents(app: FastAPI) -> None:
    """``/openapi.json`` and the Swagger UI at ``/docs`` for a principal, like every other route (the only
    exceptions are the probes and, where configured, ``/metrics``): the document names every route and
    field. Tools send the token (``schemathesis run -H 'Authorization: Bearer …'``); in the alerts
    service, a signed-in session opens ``/docs`` in the browser. ReDoc is not served."""
    app.router.routes[:] = [route for route in app.router.routes
                            if getattr(route, "path", None) not in API_DOCUMENT_PATHS]
    signed_in = [Depends(current_principal)]

    def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title}: API")

    app.add_api_route("/openapi.json", openapi_document, methods=["GET"], include_in_schema=False,
                      dependencies=signed_in)
    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False, dependencies=signed_in)


def connect_token_store(app: FastAPI, client: Any, settings: KeyedServiceSettings) -> MongoTokenStore:
    """Point the app's authenticator at the tokens in ``settings.auth.database`` on ``client``."""
    store = MongoTokenStore(client[settings.auth.database])
    app.state.authenticator.store = store
    return store
