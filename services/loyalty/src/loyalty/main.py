"""Builds the loyalty service: the faust worker and the points API, in one process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from faust.contrib.asgi import faust_app_running
from prometheus_client import CollectorRegistry

from feedback_shared.events import utcnow
from feedback_shared.http import health_router
from feedback_shared.kafka import broker_reachable, create_faust_app
from feedback_shared.metrics import metrics_asgi_app
from feedback_shared.mongo import connect, database, ensure_indexes_when_up, reachable
from loyalty.agents import LoyaltyHandler, register_agents
from loyalty.config import Settings
from loyalty.metrics import LoyaltyMetrics
from loyalty.points import tier_for
from loyalty.repository import LoyaltyRepository


def get_repo(request: Request) -> LoyaltyRepository:
    repo: LoyaltyRepository = request.app.state.repo
    return repo


def create_app(settings: Settings, registry: CollectorRegistry | None = None, *, stream: bool = True) -> FastAPI:
    registry = registry or CollectorRegistry()
    metrics = LoyaltyMetrics.create(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = connect(settings.mongo, ping=False)
        repo = LoyaltyRepository(database(client, settings.mongo, "loyalty"))
        ensure_indexes_when_up(repo.ensure_indexes)
        app.state.mongo = client
        app.state.repo = repo
        if stream:
            worker = create_faust_app("loyalty", settings.kafka)
            register_agents(worker, LoyaltyHandler(repo, settings.rules, metrics), metrics)
            async with faust_app_running(worker, stop_timeout=30):
                yield
        else:
            yield
        client.close()

    app = FastAPI(title="Feedback loyalty", version="1", lifespan=lifespan)

    @app.get("/v1/customers/{customer_id}/points", tags=["loyalty"])
    def points(
        customer_id: Annotated[str, Path(max_length=256)],
        repo: Annotated[LoyaltyRepository, Depends(get_repo)],
    ) -> dict[str, Any]:
        """Balance (the ledger's sum), tier (on points earned over the last 12 months) and recent entries."""
        earned = repo.earned(customer_id, since=utcnow() - timedelta(days=365))
        return {
            "customer_id": customer_id,
            "balance": repo.balance(customer_id),
            "tier": tier_for(earned, settings.rules),
            "earned_12m": earned,
            "ledger": [
                {"entry_id": e["_id"], "rule": e["rule"], "points": e["points"], "order_id": e.get("order_id"),
                 "created_at": e["created_at"]}
                for e in repo.entries(customer_id)
            ],
        }

    app.include_router(health_router({
        "broker": lambda: broker_reachable(settings.kafka),
        "database": lambda: reachable(app.state.mongo),
    }))
    app.mount("/metrics", metrics_asgi_app(registry))
    return app
