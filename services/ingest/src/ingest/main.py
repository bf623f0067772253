"""Builds the ingest FastAPI app. ``python -m ingest`` serves it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from feedback_shared.errors import DependencyUnavailable
from feedback_shared.http import (
    add_operational_endpoints,
    connect_token_store,
    handle_validation_errors,
)
from feedback_shared.kafka import broker_reachable
from feedback_shared.mongo import CommandCounter, connect, database, ensure_indexes_when_up, reachable
from ingest.config import Settings
from ingest.feeds import FeedPoller
from ingest.metrics import IngestMetrics
from ingest.publisher import EventPublisher, Publisher
from ingest.repository import AcceptedRepository, MongoAcceptedRepository
from ingest.routes import router, webhook_router
from ingest.service import IngestService

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    *,
    repo: AcceptedRepository | None = None,
    publisher: EventPublisher | None = None,
) -> FastAPI:
    """The ingest app. Tests may pass their own ``repo`` and ``publisher`` (then no database or
    broker is contacted)."""
    registry = registry or CollectorRegistry()
    metrics = IngestMetrics.create(registry)
    db_commands = CommandCounter(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if repo is not None and publisher is not None:
            app.state.broker_ready = app.state.database_ready = lambda: True
            app.state.ingest_service = IngestService(repo, publisher, metrics)
            yield
            return
        client = connect(settings.mongo, ping=False, listeners=[db_commands])
        connect_token_store(app, client, settings)
        mongo_repo = MongoAcceptedRepository(database(client, settings.mongo, "ingest"))
        ensure_indexes_when_up(mongo_repo.ensure_indexes)
        kafka_publisher = Publisher(settings.kafka)
        app.state.broker_ready = lambda: broker_reachable(settings.kafka)
        app.state.database_ready = lambda: reachable(client)
        app.state.ingest_service = service = IngestService(mongo_repo, kafka_publisher, metrics)
        async with httpx.AsyncClient(headers={"User-Agent": "feedback-pipeline/1 (feed poller)"}) as http:
            feed_poller = (FeedPoller(settings.feeds, service, http, policy=settings.feed_outbound_policy())
                           if settings.feeds else None)
            poller = asyncio.create_task(feed_poller.run_forever()) if feed_poller is not None else None
            yield
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            if feed_poller is not None:
                feed_poller.parser.close()
        kafka_publisher.close()
        client.close()

    app = FastAPI(
        title="Feedback ingest",
        version="1",
        description="Reviews, mentions, complaints, survey answers, suggestions, purchases and returns in; events to Kafka out.",
        lifespan=lifespan,
    )

    @app.exception_handler(DependencyUnavailable)
    async def _unavailable(_: Request, exc: DependencyUnavailable) -> JSONResponse:
        return JSONResponse(
            {"detail": f"temporarily unavailable, nothing was accepted: {exc}"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(settings.retry_after_s)},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _count_refusals(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (401, 403):
            metrics.rejected.labels(reason="unauthorized" if exc.status_code == 401 else "forbidden").inc()
        return await http_exception_handler(request, exc)

    app.state.settings = settings
    app.include_router(router)
    app.include_router(webhook_router)  # authenticated by the source's signature, not a token
    add_operational_endpoints(app, registry, {
        "broker": lambda: bool(app.state.broker_ready()),
        "database": lambda: bool(app.state.database_ready()),
    }, settings)
    # After the shared handler: validation refusals are counted too.
    handle_validation_errors(app, metrics.rejected.labels(reason="validation").inc)
    return app
