"""MongoDB adapter helpers. Each service owns one database; indexes are created at start-up."""

from __future__ import annotations

from collections.abc import Callable

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from feedback_shared.config import MongoSettings


def connect(settings: MongoSettings, *, ping: bool = True) -> MongoClient[dict]:  # type: ignore[type-arg]
    """A client with bounded server selection; ``ping`` fails at start-up rather than on first write."""
    client: MongoClient[dict] = MongoClient(  # type: ignore[type-arg]
        settings.url.get_secret_value(),
        serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
        connectTimeoutMS=settings.server_selection_timeout_ms,
        tz_aware=True,
        retryWrites=settings.retry_writes,
    )
    if ping:
        client.admin.command("ping")
    return client


def database(client: MongoClient[dict], settings: MongoSettings, default: str) -> Database[dict]:  # type: ignore[type-arg]
    return client[settings.database or default]


def reachable(client: MongoClient[dict]) -> bool:  # type: ignore[type-arg]
    try:
        client.admin.command("ping")
        return True
    except Exception:
        return False


def ensure_indexes_when_up(ensure: Callable[[], None], timeout_s: float = 60.0) -> None:
    """Create indexes, waiting a bounded time for a database that is still starting (compose, k8s)."""
    retry(stop=stop_after_delay(timeout_s), wait=wait_exponential(max=2),
          retry=retry_if_exception_type(PyMongoError), reraise=True)(ensure)()
