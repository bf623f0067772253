"""Builds the sentiment service: the faust worker and the ad-hoc scoring API, in one process."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from faust.contrib.asgi import faust_app_running
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

from feedback_shared.auth import AUTH_RESPONSES, Principal, require
from feedback_shared.events import MAX_TEXT_CHARS, NeedScore, SentimentResult
from feedback_shared.http import BODY_RESPONSES, add_operational_endpoints, connect_token_store
from feedback_shared.kafka import ConsumerLagCollector, broker_reachable, create_faust_app
from feedback_shared.mongo import connect
from sentiment.agents import register_agents
from sentiment.config import Settings
from sentiment.metrics import SentimentMetrics
from sentiment.model import SentimentModel
from sentiment.scoring import feedback_type

#: How long a thread may hold the GIL while another waits for it (Python's default is 5 ms). An encoder
#: session's thread that finished a run waits for the GIL to hand back its result and take the next run,
#: while the other batch in flight is in plain Python: at 1 ms the sessions idle less. Stage alone, in
#: turns (two rounds each, 2,240 texts a backlog): 183-211 texts/s at 5 ms, 214-235 at 1 ms.
GIL_SWITCH_INTERVAL_S = 0.001


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    language: Annotated[str, Field(max_length=16)] | None = None


class ScoreResponse(BaseModel):
    language: str | None
    language_confidence: float
    sentiment: SentimentResult
    needs: list[NeedScore]
    urgency: float
    anger: float
    feedback_type: str
    model_version: str


def create_app(settings: Settings, registry: CollectorRegistry | None = None, *, stream: bool = True) -> FastAPI:
    """The API, and (with ``stream``) the faust agent running on the same event loop."""
    registry = registry or CollectorRegistry()
    metrics = SentimentMetrics.create(registry)
    model = SentimentModel(embed_threads=settings.embed_threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The heads' products are small (a batch against 3,474 neighbours at most): a second BLAS thread
        # gains little on them and then spins, taking a core from the encoder sessions. Stage alone, in
        # turns (two rounds of 2,240 texts each): 150-172 texts/s with OpenBLAS's default threads, 202-235
        # with one.
        blas = threadpool_limits(limits=settings.blas_threads, user_api="blas")
        try:
            # The service keeps nothing in a database; the client reads principals' tokens only.
            client = connect(settings.mongo, ping=False)
            connect_token_store(app, client, settings)
            if stream:
                sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
                worker = create_faust_app("sentiment", settings.kafka)
                registry.register(ConsumerLagCollector(worker))
                register_agents(worker, settings, model, metrics)
                async with faust_app_running(worker, stop_timeout=30):
                    yield
            else:
                yield
            client.close()
        finally:
            blas.restore_original_limits()

    app = FastAPI(title="Feedback sentiment", version="1", lifespan=lifespan)

    @app.post("/v1/score", response_model=ScoreResponse, tags=["sentiment"],
              responses={**AUTH_RESPONSES, **BODY_RESPONSES})
    async def score(body: ScoreRequest, _: Annotated[Principal, Depends(require("score"))]) -> ScoreResponse:
        """Score one text ad hoc: the same result shape as ``FeedbackScored``."""
        [result] = await asyncio.to_thread(model.score, [body.text], [body.language])
        return ScoreResponse(**result.as_fields(), model_version=model.version,
                             feedback_type=feedback_type(body.text, result.sentiment.label))

    add_operational_endpoints(app, registry, {"broker": lambda: broker_reachable(settings.kafka)}, settings)
    return app
