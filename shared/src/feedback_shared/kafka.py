"""Kafka adapters: the kafka-python producer (acks=all), topic creation, faust apps and the DLQ.

Consumers are faust agents (aiokafka underneath): kafka-python's own group consumer takes about 20 s to
join a group on the embedded broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

import faust
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pymongo.errors import PyMongoError

from feedback_shared.config import KafkaSettings
from feedback_shared.errors import DecodeError
from feedback_shared.logs import event_fields
from feedback_shared.topics import (
    ALL_TOPICS,
    DLQ_CONSUMER_HEADER,
    DLQ_ERROR_HEADER,
    DLQ_SOURCE_OFFSET_HEADER,
    DLQ_SOURCE_TOPIC_HEADER,
    TopicSpec,
)

logger = logging.getLogger(__name__)
M = TypeVar("M")


def max_event_bytes(settings: KafkaSettings) -> int:
    """The largest event ingest accepts: three eighths of a record, so what the stages make of it (the
    scored event adds its scores; a dead-letter record its headers) still fits one record."""
    return settings.max_message_bytes * 3 // 8


def kafka_ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (None otherwise): verifies the brokers' certificates and
    host names against ``ssl_cafile`` (or the system's CAs), and presents the client certificate if set."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
    if settings.ssl_certfile is not None and settings.ssl_keyfile is not None:
        context.load_cert_chain(str(settings.ssl_certfile), str(settings.ssl_keyfile))
    return context


def client_security_options(settings: KafkaSettings) -> dict[str, Any]:
    """The security keyword arguments of a kafka-python client (producer, admin) and of an aiokafka one:
    both take ``security_protocol``, ``ssl_context``, ``sasl_mechanism`` and ``sasl_plain_username`` /
    ``sasl_plain_password`` (SCRAM included). One TLS context for both, so every client checks the
    brokers the same way."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    context = kafka_ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL_") and settings.sasl_password is not None:
        # (KafkaSettings refuses SASL without mechanism, username and password.)
        options |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password.get_secret_value(),
        }
    return options


def faust_credentials(settings: KafkaSettings) -> faust.auth.Credentials | None:
    """faust's ``broker_credentials`` for the settings (None: PLAINTEXT). faust hands them to aiokafka
    (``credentials_to_aiokafka_auth``): SASL over TLS when a context is given, SSL alone otherwise."""
    context = kafka_ssl_context(settings)
    if settings.security_protocol.startswith("SASL_") and settings.sasl_password is not None:
        return faust.SASLCredentials(username=settings.sasl_username,
                                     password=settings.sasl_password.get_secret_value(),
                                     mechanism=settings.sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_producer(settings: KafkaSettings, **overrides: Any) -> KafkaProducer:
    """A producer that counts a send as done only when every in-sync replica has it."""
    options: dict[str, Any] = {
        **client_security_options(settings),
        "bootstrap_servers": settings.bootstrap_servers,
        "acks": "all",
        "linger_ms": 2,
        "retries": 5,
        "request_timeout_ms": int(settings.publish_timeout_s * 1000),
        "max_block_ms": int(settings.publish_timeout_s * 1000),
        "max_request_size": settings.max_message_bytes,
    }
    options.update(overrides)
    return KafkaProducer(**options)


def topic_configs(settings: KafkaSettings, *, dead_letter: bool = False) -> dict[str, str]:
    """The topic-level configs ``ensure_topics`` creates a topic with: its retention, and with three
    or more replicas ``min.insync.replicas=2``, so an acks=all write is on two brokers before it counts."""
    configs = {"retention.ms": str(settings.dlq_retention_ms if dead_letter else settings.retention_ms)}
    if settings.replication_factor >= 3:
        configs["min.insync.replicas"] = "2"
    return configs


def ensure_topics(settings: KafkaSettings, specs: Iterable[TopicSpec[Any]] = ALL_TOPICS) -> list[str]:
    """Create every topic in ``specs`` and its ``.dlq`` twin, with the settings' replication factor and
    retention; existing topics are left alone (change their configs with kafka-configs)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=15_000,
                             **client_security_options(settings))
    try:
        existing = set(admin.list_topics())
        wanted = []
        rf = settings.replication_factor
        for spec in specs:
            wanted.append(NewTopic(spec.name, spec.partitions, rf, topic_configs=topic_configs(settings)))
            wanted.append(NewTopic(spec.dlq_name, 1, rf, topic_configs=topic_configs(settings, dead_letter=True)))
        missing = [t for t in wanted if t.name not in existing]
        for topic in missing:
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in missing]
    finally:
        admin.close()


def broker_reachable(settings: KafkaSettings, timeout_s: float = 1.0) -> bool:
    """Whether the first bootstrap server accepts a TCP connection (a cheap readiness probe)."""
    host, _, port = settings.bootstrap_servers.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def _install_fetch_wait_setting() -> None:
    """Let each faust app choose its consumers' ``fetch_max_wait_ms`` (faust passes a fixed 1,500 ms
    to aiokafka; see ``KafkaSettings.fetch_max_wait_ms``). aiokafka reads the value when the consumer
    starts, after faust has built it, so setting it on the built consumer is enough."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if getattr(AIOKafkaConsumerThread, "_feedback_fetch_wait", False):
        return
    build = AIOKafkaConsumerThread._create_worker_consumer

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = build(self, transport)
        wait_ms = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = int(wait_ms)
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]
    AIOKafkaConsumerThread._feedback_fetch_wait = True  # type: ignore[attr-defined]


def create_faust_app(app_id: str, settings: KafkaSettings, **overrides: Any) -> faust.App:
    """A faust app that reads and writes raw bytes; decoding goes through the topic registry."""
    options: dict[str, Any] = {
        "broker": f"kafka://{settings.bootstrap_servers}",
        "broker_rebalance_timeout": settings.rebalance_timeout_s,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": settings.heartbeat_interval_s,
        "broker_commit_interval": 1.0,
        "consumer_auto_offset_reset": "earliest",
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "web_enabled": False,
        "store": "memory://",
        "producer_acks": -1,
        "producer_max_request_size": settings.max_message_bytes,
        "broker_credentials": faust_credentials(settings),
    }
    if settings.state_dir is not None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
        options["datadir"] = str(settings.state_dir / "{conf.name}-data")
    options.update(overrides)
    _install_fetch_wait_setting()
    app = faust.App(f"{settings.group_prefix}-{app_id}", **options)
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms  # type: ignore[attr-defined]
    return app


def faust_topic(app: faust.App, name: str) -> Any:
    """A faust topic carrying raw bytes (never pickle; JSON decoding is ours, per message)."""
    return app.topic(
        name, value_type=bytes, key_type=bytes, value_serializer="raw", key_serializer="raw"
    )


#: The largest value a dead-letter record carries: a message too large to copy whole (it came in under
#: the broker's limit; the DLQ record adds headers) keeps its first bytes, and says so in a header.
DLQ_MAX_VALUE_BYTES = 512 * 1024
DLQ_TRUNCATED_HEADER = "dlq-truncated-from-bytes"


#: Errors that mean "a dependency is down": retry the same message until it is back.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (PyMongoError, KafkaError, OSError, asyncio.TimeoutError)


class MessageProcessor(Generic[M]):
    """Decode each message through the registry and apply a handler, at least once, without loss.

    - A message that does not decode goes to the topic's DLQ with the reason; the stream moves on.
    - A handler failing on a transient error (database or broker down) is retried with backoff, as
      long as it takes: the offset is not acknowledged until the effect is durable.
    - A handler failing on anything else is retried ``max_handler_attempts`` times, then the message
      is dead-lettered with the error, so one bad message cannot stall its partition forever.
    """

    def __init__(
        self,
        app: faust.App,
        spec: TopicSpec[M],
        handler: Callable[[M], Awaitable[None]],
        *,
        on_dead_letter: Callable[[str], None] | None = None,
        max_handler_attempts: int = 5,
        max_backoff_s: float = 5.0,
        consumer: str = "",
    ) -> None:
        self.app = app
        self.consumer = consumer
        self.spec = spec
        self.handler = handler
        self.on_dead_letter = on_dead_letter
        self.max_handler_attempts = max_handler_attempts
        self.max_backoff_s = max_backoff_s
        self.dlq_topic = faust_topic(app, spec.dlq_name)

    async def dead_letter(self, event: Any, reason: str) -> None:
        message = event.message
        headers = [
            (DLQ_ERROR_HEADER, reason.encode("utf-8")[:4000]),
            (DLQ_SOURCE_TOPIC_HEADER, message.topic.encode()),
            (DLQ_SOURCE_OFFSET_HEADER, f"{message.partition}:{message.offset}".encode()),
            (DLQ_CONSUMER_HEADER, self.consumer.encode()),
        ]
        value = event.value or b""
        if len(value) > DLQ_MAX_VALUE_BYTES:
            # The source topic keeps the whole message (its offset is in the headers) for its retention.
            headers.append((DLQ_TRUNCATED_HEADER, str(len(value)).encode()))
            value = value[:DLQ_MAX_VALUE_BYTES]
        fut = await self.dlq_topic.send(key=message.key, value=value, headers=headers)
        await fut
        logger.warning(
            "dead_lettered topic=%s partition=%s offset=%s reason=%s",
            message.topic, message.partition, message.offset, reason,
        )
        if self.on_dead_letter is not None:
            self.on_dead_letter(self.spec.name)

    def decode(self, event: Any) -> M:
        """Decode one message through the registry (raises ``DecodeError``)."""
        return self.spec.decode(event.value)

    async def retrying(self, where: dict[str, Any], action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` until it succeeds.

        Transient failures (database or broker down) are retried with capped backoff for as long as
        they last. Any other failure is retried ``max_handler_attempts`` times and then re-raised.
        ``where`` (partition and offset, or the batch's size; the event's ids) goes into the log lines.
        """
        attempt = 0
        failures = 0
        while True:
            attempt += 1
            try:
                await action()
                return
            except TRANSIENT_ERRORS as exc:
                delay = min(self.max_backoff_s, 0.2 * 2 ** min(attempt, 6))
                logger.warning("transient_failure", extra={"topic": self.spec.name, **where, "attempt": attempt,
                                                           "retry_in_s": delay, "error": repr(exc)})
                await asyncio.sleep(delay)
            except Exception:
                failures += 1
                logger.exception("handler_failed", extra={"topic": self.spec.name, **where, "attempt": failures})
                if failures >= self.max_handler_attempts:
                    raise
                await asyncio.sleep(min(self.max_backoff_s, 0.1 * 2**failures))

    async def process(self, event: Any) -> None:
        try:
            model = self.decode(event)
        except DecodeError as exc:
            await self.dead_letter(event, exc.reason)
            return
        where = {"partition": event.message.partition, "offset": event.message.offset, **event_fields(model)}
        try:
            await self.retrying(where, lambda: self.handler(model))
        except Exception as exc:
            await self.dead_letter(event, f"handler failed: {type(exc).__name__}: {exc}")

    async def process_batch(
        self, events: list[Any], batch_handler: Callable[[list[M]], Awaitable[None]]
    ) -> None:
        """Decode a batch (dead-lettering what does not decode) and handle the rest together.

        If the batch handler fails for good, each message is handled alone, so only the message that
        really fails is dead-lettered.
        """
        good: list[tuple[Any, M]] = []
        for event in events:
            try:
                good.append((event, self.decode(event)))
            except DecodeError as exc:
                await self.dead_letter(event, exc.reason)
        if not good:
            return
        models = [m for _, m in good]
        try:
            await self.retrying({"batch": len(models)}, lambda: batch_handler(models))
        except Exception:
            for event, model in good:
                try:
                    await self.retrying({"partition": event.message.partition, "offset": event.message.offset,
                                         **event_fields(model)}, lambda m=model: batch_handler([m]))  # type: ignore[misc]
                except Exception as exc:
                    await self.dead_letter(event, f"handler failed: {type(exc).__name__}: {exc}")

    async def process_batch_until_done(
        self, events: list[Any], batch_handler: Callable[[list[M]], Awaitable[None]],
        on_stall: Callable[[str], None] | None = None,
    ) -> None:
        """``process_batch`` until it completes. What escapes it is an error no rule classifies (the DLQ
        cannot be written, a bug outside the handler): the partition stops here, counted and logged, and
        the batch is tried again; nothing of it is acknowledged meanwhile, so nothing is lost."""
        attempt = 0
        while True:
            try:
                await self.process_batch(events, batch_handler)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                attempt += 1
                if on_stall is not None:
                    on_stall(self.spec.name)
                logger.exception("partition_stalled", extra={"topic": self.spec.name, "batch": len(events),
                                                              "attempt": attempt})
                await asyncio.sleep(min(self.max_backoff_s * 6, 0.5 * 2 ** min(attempt, 6)))


async def consume_in_batches(stream: Any, batch_size: int, within_s: float,
                             step: Callable[[list[Any]], Awaitable[None]], *, in_flight: int = 1) -> None:
    """Feed ``step`` batches of up to ``batch_size`` events (what arrived within ``within_s``) and
    acknowledge each batch only after ``step`` returned.

    ``in_flight`` > 1 lets the next batches start before the oldest has finished (a stage whose step
    computes in a worker thread and then waits on the broker keeps its cores busy through the wait).
    Batches are still acknowledged strictly in the order they were taken, each once its own step and
    every earlier one returned: a later batch that finishes first waits, so an offset is never
    committed past a batch that is still running. If a step raises, the later ones are cancelled and
    nothing from the failed batch on is acknowledged.

    Not faust's ``take_events``: it acknowledges a batch in a ``finally``, so a batch whose processing
    raised, or was cancelled by a stop or a rebalance, was acknowledged unprocessed, and its offsets
    committed: lost. Here a stop leaves the batch unacknowledged, to be delivered again."""
    if in_flight < 1:
        raise ValueError("in_flight must be at least 1")
    stream.enable_acks = False
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=batch_size)
    # Started steps in the order taken; a slot is taken before a batch is formed, so with one slot a
    # batch is formed only after the previous one is done (as a plain loop would).
    running: asyncio.Queue[tuple[list[Any], asyncio.Future[None]]] = asyncio.Queue()
    #: Every started step not yet acknowledged (the one being awaited included): what a stop cancels.
    unacknowledged: set[asyncio.Future[None]] = set()
    slots = asyncio.Semaphore(in_flight)
    loop = asyncio.get_running_loop()

    async def read() -> None:
        async for event in stream.events():
            await queue.put(event)

    async def take() -> list[Any]:
        batch = [await queue.get()]
        deadline = loop.time() + within_s
        while len(batch) < batch_size:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def start_steps() -> None:
        while True:
            await slots.acquire()
            batch = await take()
            task = asyncio.ensure_future(step(batch))
            unacknowledged.add(task)
            running.put_nowait((batch, task))

    async def acknowledge_in_order() -> None:
        while True:
            batch, task = await running.get()
            await task
            for event in batch:
                await stream.ack(event)
            unacknowledged.discard(task)
            slots.release()

    reader = asyncio.create_task(read(), name="stream-reader")
    starter = asyncio.create_task(start_steps(), name="stream-batches")
    try:
        await acknowledge_in_order()
    finally:
        tasks = (starter, reader, *unacknowledged)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class EventSink:
    """Publishes events to one registry topic from inside a faust app, and waits for the broker."""

    def __init__(self, app: faust.App, spec: TopicSpec[Any]) -> None:
        self.spec = spec
        self.topic = faust_topic(app, spec.name)

    async def send_all(self, events: Iterable[Any]) -> None:
        """Send every event, then wait until the broker acknowledged all of them.

        The caller's input offsets are acknowledged only after this returns, so an output is never
        lost to a crash between consuming and producing (at worst it is produced twice, with the same
        ``event_id``).
        """
        futures = await self.enqueue(events)
        if futures:
            await asyncio.gather(*futures)

    async def enqueue(self, events: Iterable[Any]) -> list[asyncio.Future[Any]]:
        """Hand every event to the producer, in order, and return the futures of the broker's
        acknowledgements (which the caller must await before acknowledging its input)."""
        futures = []
        for event in events:
            headers = [("event_type", str(getattr(event, "event_type", "")).encode()),
                       ("trace_id", str(event.trace_id).encode())]
            futures.append(await self.topic.send(
                key=self.spec.key(event), value=self.spec.encode(event), headers=headers
            ))
        return futures


class PublishTurns:
    """Turns for batches that run at once (``consume_in_batches(in_flight=...)``) but must hand their
    outputs to the producer one batch after another, in the order they asked: ``take()`` at the start
    of a step, ``await turn.ready()`` before enqueueing, ``turn.done()`` in a ``finally`` (a failed
    step gives its turn up, and the next one goes on)."""

    def __init__(self) -> None:
        self._last: asyncio.Future[None] | None = None

    def take(self) -> PublishTurn:
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        turn = PublishTurn(self._last, mine)
        self._last = mine
        return turn


class PublishTurn:
    def __init__(self, previous: asyncio.Future[None] | None, mine: asyncio.Future[None]) -> None:
        self._previous, self._mine = previous, mine

    async def ready(self) -> None:
        """Wait until every earlier turn is done (or given up)."""
        if self._previous is not None and not self._previous.done():
            await asyncio.shield(self._previous)

    def done(self) -> None:
        if not self._mine.done():
            self._mine.set_result(None)


def register_agent(
    app: faust.App, spec: TopicSpec[M], name: str, handle: Callable[[M], Awaitable[None]], dlq: Any,
    stalls: Any | None = None,
) -> None:
    """A faust agent on ``spec`` that decodes, dead-letters (counting in ``dlq``, a ``dlq_messages``
    counter) and applies ``handle`` at least once, one message at a time."""

    async def handle_one(items: list[M]) -> None:
        for item in items:
            await handle(item)

    register_batch_agent(app, spec, name, handle_one, dlq, batch_size=1, within_s=0.0, stalls=stalls)


def register_batch_agent(
    app: faust.App, spec: TopicSpec[M], name: str, handle_batch: Callable[[list[M]], Awaitable[None]], dlq: Any,
    *, batch_size: int = 100, within_s: float = 0.05, stalls: Any | None = None, in_flight: int = 1,
) -> None:
    """A faust agent for a handler that takes up to ``batch_size`` messages at once (what arrived within
    ``within_s``): one wait for the broker's acknowledgements per batch instead of one per message.
    Offsets are acknowledged after the batch's effects (``consume_in_batches``). ``stalls``: a
    ``stream_stalls`` counter (``stream_stalls_counter``) for errors that stop the partition.
    ``in_flight``: batches handled at once, acknowledged in order (``consume_in_batches``)."""
    processor = MessageProcessor(app, spec, lambda item: handle_batch([item]), consumer=name,
                                 on_dead_letter=lambda topic: dlq.labels(topic=topic).inc())
    on_stall = (lambda topic: stalls.labels(topic=topic).inc()) if stalls is not None else None

    async def run(stream: Any) -> None:
        await consume_in_batches(stream, batch_size, within_s,
                                 lambda events: processor.process_batch_until_done(events, handle_batch, on_stall),
                                 in_flight=in_flight)

    app.agent(faust_topic(app, spec.name), name=name)(run)


class ConsumerLagCollector(Collector):
    """``consumer_lag{group,topic,partition}``: messages in each partition this worker is assigned that
    its consumer group has not committed yet (the partition's end offset minus the committed offset), read
    from the faust consumer at scrape time. A partition shows up once the group has committed on it, or
    while it is empty."""

    def __init__(self, app: faust.App | None = None) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("consumer_lag", "Messages not yet committed by this service's consumer group.",
                                  labels=["group", "topic", "partition"])
        group = str(self.app.conf.id) if self.app else ""
        consumer = self.app._consumer if self.app else None  # never create one here, only read
        if consumer is not None:
            try:
                committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
                for tp in sorted(consumer.assignment()):
                    highwater, done = consumer.highwater(tp), committed.get(tp)
                    if highwater == 0:  # an empty partition: nothing to commit yet, nothing behind
                        done = 0
                    if highwater is not None and done is not None:
                        gauge.add_metric([group, tp.topic, str(tp.partition)], max(0, highwater - done))
            except Exception:  # a rebalance in progress: no sample this scrape rather than a failed scrape
                logger.debug("consumer_lag unavailable", exc_info=True)
        yield gauge
