"""MongoDB adapter helpers. Each service owns one database; indexes are created at start-up."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from pymongo import MongoClient, monitoring
from pymongo.database import Database
from pymongo.errors import PyMongoError
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from feedback_shared.config import MongoSettings

#: Ids per ``$in`` query. The embedded development database's cost grows with the square of an ``$in``
#: list (2,000 ids: 7 s; 20 lookups of 100: 0.3 s); a real MongoDB does not mind either way.
IN_CHUNK = 100


def chunks(ids: Sequence[str], size: int = IN_CHUNK) -> Iterator[list[str]]:
    """``ids`` in lists of at most ``size``, for ``$in`` queries."""
    for start in range(0, len(ids), size):
        yield list(ids[start:start + size])


class CommandCounter(monitoring.CommandListener):
    """Counts the commands a service sends to its database (``mongo_commands_total{command}``): one
    command is one round trip, the cost make bench divides by the events handled."""

    #: Commands the driver sends on its own (server monitoring, sessions): not the service's work.
    IGNORED = frozenset({"hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo", "saslStart",
                         "saslContinue"})

    def __init__(self, registry: CollectorRegistry) -> None:
        self.commands = Counter("mongo_commands", "Commands sent to the service's database (round trips), "
                                "by command name.", ["command"], registry=registry)
        # Time per command and collection: a collection whose commands slow down as it grows (a query
        # the database answers with a scan) shows here before it shows in the alert latency.
        self.seconds = Histogram("mongo_command_seconds", "Database command time, by command and collection.",
                                 ["command", "collection"], registry=registry,
                                 buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
        #: request id -> (command, collection), from started to succeeded/failed (dict operations are
        #: atomic, and the driver calls listeners from several threads).
        self._pending: dict[int, tuple[str, str]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in self.IGNORED:
            return
        self.commands.labels(command=event.command_name).inc()
        target = event.command.get(event.command_name)
        self._pending[event.request_id] = (event.command_name, target if isinstance(target, str) else "")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._observe(event.request_id, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._observe(event.request_id, event.duration_micros)

    def _observe(self, request_id: int, duration_micros: int) -> None:
        pending = self._pending.pop(request_id, None)
        if pending is not None:
            self.seconds.labels(command=pending[0], collection=pending[1]).observe(duration_micros / 1e6)


def client_tls_options(settings: MongoSettings) -> dict[str, Any]:
    """pymongo's TLS keyword arguments for the settings: none when ``tls`` is off (a ``tls=true`` in the
    URL still applies), else ``tls`` and, if given, ``tlsCAFile``."""
    if not settings.tls:
        return {}
    options: dict[str, Any] = {"tls": True}
    if settings.tls_ca_file is not None:
        options["tlsCAFile"] = str(settings.tls_ca_file)
    return options


def connect(settings: MongoSettings, *, ping: bool = True,
            listeners: Sequence[monitoring.CommandListener] = ()) -> MongoClient[dict]:  # type: ignore[type-arg]
    """A client with bounded server selection; ``ping`` fails at start-up rather than on first write.
    ``listeners``: command listeners such as ``CommandCounter``. Credentials come in the URL; TLS from
    ``tls`` and ``tls_ca_file`` (``client_tls_options``)."""
    client: MongoClient[dict] = MongoClient(  # type: ignore[type-arg]
        settings.url.get_secret_value(),
        **client_tls_options(settings),
        serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
        connectTimeoutMS=settings.server_selection_timeout_ms,
        tz_aware=True,
        retryWrites=settings.retry_writes,
        event_listeners=list(listeners),
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
