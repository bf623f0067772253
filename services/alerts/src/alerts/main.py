"""Builds the alerts service: the faust worker, the outbox dispatcher and the API, in one process."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from faust.contrib.asgi import faust_app_running
from prometheus_client import CollectorRegistry

from alerts.agents import register_agents
from alerts.config import Settings
from alerts.inbox import inbox_router
from alerts.insights_api import insights_pages, insights_router
from alerts.metrics import AlertsMetrics
from alerts.notifier import Dispatcher
from alerts.routes import router
from alerts.service import AlertService
from alerts.sessions import Sessions, cookie_principal
from alerts.silence import SilenceMonitor
from alerts.sla import SlaMonitor
from alerts.stores import AlertsStore
from feedback_shared.events import utcnow
from feedback_shared.http import add_operational_endpoints, connect_token_store
from feedback_shared.kafka import ConsumerLagCollector, EventSink, broker_reachable, create_faust_app
from feedback_shared.mongo import CommandCounter, connect, database, ensure_indexes_when_up, reachable
from feedback_shared.topics import ALERT_EVENTS, CUSTOMER_PROFILES


def create_app(settings: Settings, registry: CollectorRegistry | None = None, *, stream: bool = True) -> FastAPI:
    registry = registry or CollectorRegistry()
    metrics = AlertsMetrics.create(registry)
    db_commands = CommandCounter(registry)
    policy = settings.policy()
    # Without a configured secret (development only: the settings refuse it elsewhere), sessions last
    # as long as the process.
    secret = settings.session_secret.get_secret_value().encode() if settings.session_secret else secrets.token_bytes(32)
    sessions = Sessions(secret, max_age_s=settings.session_max_age_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = connect(settings.mongo, ping=False, listeners=[db_commands])
        connect_token_store(app, client, settings)
        store = AlertsStore.mongo(database(client, settings.mongo, "alerts"))
        ensure_indexes_when_up(store.ensure_indexes)
        app.state.mongo = client
        app.state.store = store
        app.state.metrics = metrics
        if not stream:
            yield
            client.close()
            return
        worker = create_faust_app("alerts", settings.kafka)
        registry.register(ConsumerLagCollector(worker))
        app.state.dispatcher = dispatcher = Dispatcher(store.outbox, settings, metrics)
        service = AlertService(store, settings, metrics, policy, handoff=dispatcher.hand_over)
        app.state.service = service
        register_agents(worker, service, metrics, on_enqueued=dispatcher.wake)
        app.state.profile_sink = EventSink(worker, CUSTOMER_PROFILES)
        app.state.alert_sink = alert_sink = EventSink(worker, ALERT_EVENTS)
        monitor = SlaMonitor(store.cases, service, metrics, list(settings.manager_notify))
        silence = SilenceMonitor(store, service, metrics, settings.silence_window(), clock=utcnow)
        async with faust_app_running(worker, stop_timeout=30):
            tasks = [asyncio.create_task(dispatcher.run_forever(), name="outbox-dispatcher"),
                     asyncio.create_task(monitor.run_forever(settings.sla_poll_s, alert_sink.send_all), name="sla"),
                     asyncio.create_task(service.contacts.run_forever(settings.contact_sweep_s, dispatcher.wake),
                                         name="customer-contact"),
                     asyncio.create_task(silence.run_forever(settings.silence_sweep_s, alert_sink.send_all),
                                         name="silent-customers")]
            yield
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):  # best effort: else the leases run out
                await asyncio.to_thread(dispatcher.release_handed_over)
        client.close()

    app = FastAPI(title="Feedback alerts", version="1", lifespan=lifespan)
    app.state.sessions = sessions
    app.state.cookie_principal = cookie_principal(sessions)
    app.state.settings = settings
    app.state.fallback_csm_id = settings.fallback_csm_id
    app.state.outbound_policy = settings.outbound_policy()
    app.include_router(router)
    app.include_router(inbox_router)
    app.include_router(insights_router)
    app.include_router(insights_pages)  # after the inbox's: its /static/inbox.js is matched first
    add_operational_endpoints(app, registry, {
        "broker": lambda: broker_reachable(settings.kafka),
        "database": lambda: reachable(app.state.mongo),
    }, settings)
    return app
