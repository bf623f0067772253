"""Builds the loyalty service: the faust worker, housekeeping and the points API, in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, Response, status
from faust.contrib.asgi import faust_app_running
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field

from feedback_shared.auth import AUTH_RESPONSES, require
from feedback_shared.events import NUMBER_ONLY
from feedback_shared.http import BODY_RESPONSES, add_operational_endpoints, connect_token_store
from feedback_shared.kafka import ConsumerLagCollector, broker_reachable, create_faust_app
from feedback_shared.loops import every
from feedback_shared.mongo import CommandCounter, connect, database, ensure_indexes_when_up, reachable
from loyalty.agents import Publisher, register_agents
from loyalty.config import Settings
from loyalty.domain import InsufficientBalance
from loyalty.metrics import LoyaltyMetrics
from loyalty.points import tier_for
from loyalty.service import IdempotencyConflict, LoyaltyService
from loyalty.stores import MongoLoyaltyStore

logger = logging.getLogger(__name__)
CustomerId = Annotated[str, Path(min_length=1, max_length=256)]
#: The deepest page of a ledger: a skip MongoDB can count (an unbounded offset above 2**63 was a 500).
MAX_LEDGER_OFFSET = 1_000_000


class RedeemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: Annotated[int, Field(gt=0, le=10_000_000), NUMBER_ONLY]
    reward: Literal["points", "gift_card", "special_offer"] = "points"
    # In the body only, and required there: a key allowed in either the body or a header is a rule OpenAPI
    # cannot state, so the document said "optional" and a request without one was refused.
    idempotency_key: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        description="The same key twice redeems once (a retry after a lost answer is safe).")


def get_store(request: Request) -> MongoLoyaltyStore:
    store: MongoLoyaltyStore = request.app.state.store
    return store


def get_service(request: Request) -> LoyaltyService:
    service: LoyaltyService = request.app.state.service
    return service


StoreDep = Annotated[MongoLoyaltyStore, Depends(get_store)]
ServiceDep = Annotated[LoyaltyService, Depends(get_service)]


def create_app(settings: Settings, registry: CollectorRegistry | None = None, *, stream: bool = True) -> FastAPI:
    registry = registry or CollectorRegistry()
    metrics = LoyaltyMetrics.create(registry)
    db_commands = CommandCounter(registry)
    rules = settings.rules()

    async def housekeeping(service: LoyaltyService, store: MongoLoyaltyStore, publisher: Publisher) -> None:
        async def tick() -> None:
            metrics.set_figures(await asyncio.to_thread(store.purchases.figures))
            await publisher.publish(await asyncio.to_thread(service.expire_inactive))

        await every(settings.housekeeping_interval_s, tick, name="housekeeping")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = connect(settings.mongo, ping=False, listeners=[db_commands])
        connect_token_store(app, client, settings)
        store = MongoLoyaltyStore(client, database(client, settings.mongo, "loyalty"))
        ensure_indexes_when_up(store.ensure_indexes)
        service = LoyaltyService(store, rules, metrics, pseudonym_key=settings.pseudonym_key.get_secret_value().encode())
        app.state.mongo, app.state.store, app.state.service = client, store, service
        app.state.publisher = None
        if stream:
            worker = create_faust_app("loyalty", settings.kafka)
            registry.register(ConsumerLagCollector(worker))
            publisher = Publisher(worker)
            register_agents(worker, service, metrics, publisher)
            async with faust_app_running(worker, stop_timeout=30):
                app.state.publisher = publisher
                task = asyncio.create_task(housekeeping(service, store, publisher), name="loyalty-housekeeping")
                yield
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        else:
            yield
        client.close()

    app = FastAPI(title="Feedback loyalty", version="1", lifespan=lifespan)
    # Authentication first, before any other parameter is read.
    read = APIRouter(tags=["loyalty"], dependencies=[Depends(require("loyalty.read"))], responses=AUTH_RESPONSES)
    write = APIRouter(tags=["loyalty"], dependencies=[Depends(require("loyalty.redeem"))], responses=AUTH_RESPONSES)

    @read.get("/v1/customers/{customer_id}/points")
    def points(customer_id: CustomerId, store: StoreDep, service: ServiceDep,
               limit: Annotated[int, Query(ge=1, le=500)] = 50,
               offset: Annotated[int, Query(ge=0, le=MAX_LEDGER_OFFSET)] = 0) -> dict[str, Any]:
        """Balance (kept with the ledger in one transaction), tier (points earned over the rolling
        window) and a page of the ledger, newest first."""
        state = store.accounts.account(customer_id)
        earned = store.ledger.earned_since(customer_id, service.clock() - timedelta(days=rules.tier_window_days))
        return {
            "customer_id": customer_id,
            "balance": state.balance,
            "tier": state.tier or tier_for(earned, rules),
            "earned_in_window": earned,
            "ledger_total": store.ledger.count_entries(customer_id),
            "ledger": [
                {"entry_id": e.entry_id, "rule": e.rule, "points": e.points, "order_id": e.order_id, "at": e.at,
                 **({"reward": e.details["reward"]} if "reward" in e.details else {})}
                for e in store.ledger.entries(customer_id, limit=limit, offset=offset)
            ],
        }

    @write.post("/v1/customers/{customer_id}/redeem", status_code=201, responses={
        **BODY_RESPONSES,
        200: {"description": "This idempotency key was already redeemed: the first result."},
        409: {"description": "Insufficient balance, or the key was used for a different redemption."}})
    async def redeem(customer_id: CustomerId, body: RedeemIn, request: Request, response: Response) -> dict[str, Any]:
        """Spend points on a reward (points, a gift card or a special offer), once per idempotency key."""
        key = body.idempotency_key
        service: LoyaltyService = request.app.state.service
        try:
            redemption, effects = await asyncio.to_thread(service.redeem, customer_id, body.points, body.reward, key)
        except InsufficientBalance as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
        except IdempotencyConflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
        if request.app.state.publisher is not None:
            await request.app.state.publisher.publish(effects)
        if not redemption.created:
            response.status_code = status.HTTP_200_OK
        return {"entry_id": redemption.entry.entry_id, "points": -redemption.entry.points, "reward": body.reward,
                "balance": redemption.balance, "status": "redeemed" if redemption.created else "already_redeemed"}

    app.include_router(read)
    app.include_router(write)
    add_operational_endpoints(app, registry, {
        "broker": lambda: broker_reachable(settings.kafka),
        "database": lambda: reachable(app.state.mongo),
    }, settings)
    return app
