"""HTTP pieces every service uses: health and readiness probes, API-key auth, a body-size limit, and
422 answers that can always be written."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping

from fastapi import APIRouter, FastAPI, Header, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feedback_shared.metrics import metrics_asgi_app


def health_router(readiness_checks: Mapping[str, Callable[[], bool]]) -> APIRouter:
    """``/healthz``: the process answers. ``/readyz``: every named dependency answers (else 503)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @router.get("/readyz")
    def readyz() -> JSONResponse:
        """The broker and the database are reachable."""
        checks = {name: bool(check()) for name, check in readiness_checks.items()}
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    return router


def api_key_dependency(api_keys: Callable[[], frozenset[str]]) -> Callable[..., None]:
    """A dependency that requires ``Authorization: Bearer <key>`` with one of the configured keys."""

    def require_api_key(authorization: str | None = Header(default=None)) -> None:
        if not authorization:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="missing API key: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="malformed Authorization header: expected 'Bearer <API key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, so a 500).
        if not any(hmac.compare_digest(token.strip().encode(), key.encode()) for key in api_keys()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="API key not accepted")

    return require_api_key


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
                              readiness_checks: Mapping[str, Callable[[], bool]]) -> None:
    """What every service serves besides its API: ``/healthz``, ``/readyz`` (``readiness_checks``),
    ``/metrics``, and 422s that name the field."""
    app.include_router(health_router(readiness_checks))
    handle_validation_errors(app)
    app.mount("/metrics", metrics_asgi_app(registry))
