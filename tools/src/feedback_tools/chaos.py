"""``make chaos``: the pipeline under real failures, then an audit of what went in against what came out.

It starts its own embedded stack and, while a client feeds it a multilingual mix of reviews, mentions,
purchases and returns (retrying whatever was not answered, as a real sender would), it:

1. SIGKILLs each worker (sentiment, ingest, alerts, loyalty) in the middle of the run and restarts it;
2. stops the broker (SIGSTOP) while ingest is under load, then resumes it;
3. stops the database (SIGSTOP) for 20 seconds, then resumes it;
4. feeds poison messages (bytes that are not JSON, JSON that is not the topic's event, empty values) to
   every topic.

The broker and the database are paused rather than killed: the embedded Tansu build keeps its data in
memory only, so a killed broker would lose what it had acknowledged — a property of the dev broker, not
of the pipeline (Kafka with replication does not).

Afterwards it reads every topic from the start, the alerts database and the loyalty balances, and prints
events accepted, scored, alerted, paged, credited and dead-lettered, with lost and duplicated (both must
be 0) and every poison message found in its DLQ with the reason. Exit code 1 if anything is off.
``CHAOS_EVENTS`` sets the size (default 3,000); ``CHAOS_SHORT=1`` runs the short form the tests use.
Results: ``build/chaos/results.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import ROUND_FLOOR
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import MongoClient

from feedback_shared.topics import (
    ALL_TOPICS,
    COMMERCE_EVENTS,
    DLQ_CONSUMER_HEADER,
    DLQ_ERROR_HEADER,
    DLQ_SOURCE_OFFSET_HEADER,
    DLQ_SOURCE_TOPIC_HEADER,
    FEEDBACK_RECEIVED,
    FEEDBACK_SCORED,
)
from feedback_tools.bench import make_load
from feedback_tools.devstack import SERVICES, STREAM_WORKERS, EmbeddedStack, StackConfig, free_port
from feedback_tools.receiver import StandInReceiver

OUT = Path("build/chaos")

#: Who consumes each topic inside the pipeline (the agents' names, as in their DLQ records). The other
#: topic (alerts.events.v1) is an output for systems outside the pipeline.
CONSUMERS: dict[str, tuple[str, ...]] = {
    "feedback.received.v1": ("sentiment.score_feedback",),
    "feedback.scored.v1": ("alerts.handle_scored", "alerts.insights", "loyalty.review_bonus"),
    "surveys.answered.v1": ("alerts.insights_surveys",),
    "commerce.events.v1": ("loyalty.handle_commerce", "alerts.timeline_commerce"),
    "loyalty.points.v1": ("alerts.tiers",),
    "customer.erasure.v1": ("alerts.erase_customer", "loyalty.anonymise_customer", "sentiment.forget_customer"),
    "customer.profiles.v1": ("loyalty.profiles",),
    "customer.notifications.v1": ("alerts.customer_contact",),
}

#: Poison of every kind a decoder meets: not UTF-8, not JSON, the wrong JSON shape, another topic's event,
#: an unknown schema version, nothing at all.
POISON: tuple[bytes, ...] = (
    b"\xff\xfe\x00 not json at all",
    b"{\"truncated\": ",
    b"[1, 2, 3]",
    b"{}",
    json.dumps({"schema_version": 99, "event_type": "feedback.received", "event_id": str(uuid.uuid4())}).encode(),
    json.dumps({"event_type": "purchase.recorded", "schema_version": 1, "event_id": str(uuid.uuid4()),
                "order_id": "x", "customer_id": "x", "amount": "not a number", "currency": "EUR"}).encode(),
    b"",
)


@dataclass(frozen=True)
class ChaosPlan:
    events: int
    #: Items per second the client offers while the faults happen (the rest follows at full speed).
    rate: float
    db_stop_s: float
    broker_stop_s: float
    settle_timeout_s: float
    #: Processes of each stream worker (sentiment, alerts, loyalty) in its consumer group. With more than
    #: one, the faults kill one replica of each while the others carry on.
    replicas: int = 1

    @classmethod
    def full(cls, events: int = 3000) -> ChaosPlan:
        return cls(events=events, rate=20.0, db_stop_s=20.0, broker_stop_s=10.0, settle_timeout_s=600.0)

    @classmethod
    def short(cls, events: int = 400) -> ChaosPlan:
        return cls(events=events, rate=8.0, db_stop_s=8.0, broker_stop_s=5.0, settle_timeout_s=240.0)


# ---- the client ------------------------------------------------------------------------------------
@dataclass
class Sent:
    """What the client was finally told about each item, and what it took to get there."""

    final: dict[int, dict[str, Any]] = field(default_factory=dict)
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    #: Answers of 5xx other than 503 (which means "retry later"): a failure is a clear 503, never a 500.
    server_errors: int = 0


class Client(threading.Thread):
    """Sends the load in batches of 20 at ``rate`` items/s and retries every item until it has a final
    answer (accepted, duplicate or rejected), through crashes, 503s and timeouts, as a real sender
    would. The same item is always re-sent with the same ``external_id``."""

    def __init__(self, url: str, api_key: str, items: list[dict[str, Any]], rate: float) -> None:
        super().__init__(daemon=True, name="chaos-client")
        self.url, self.api_key, self.items, self.rate = url, api_key, items, rate
        self.sent = Sent()
        self.full_speed = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # surfaced by the caller
            self.failure = exc

    def _run(self) -> None:
        size = 20
        started = time.monotonic()
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.api_key}"},
                          timeout=30) as client:
            for start in range(0, len(self.items), size):
                due = started + start / self.rate
                while not self.full_speed.is_set() and time.monotonic() < due:
                    time.sleep(0.05)
                self._send(client, list(range(start, min(start + size, len(self.items)))))

    def _send(self, client: httpx.Client, indexes: list[int]) -> None:
        while indexes:
            try:
                response = client.post("/v1/batch", json={"items": [self.items[i] for i in indexes]})
                if response.status_code in (200, 202, 207, 503):
                    body = response.json()
                    results = body.get("results") if isinstance(body, dict) else None
                    if results is None:  # a 503 before any item was looked at
                        raise RuntimeError(f"HTTP {response.status_code}")
                    pending = []
                    for result in results:
                        index = indexes[result["index"]]
                        if result["status"] == "unavailable":
                            pending.append(index)
                        else:
                            self.sent.final[index] = result
                    if pending:
                        self.sent.errors["item unavailable"] += len(pending)
                    indexes = pending
                else:
                    if response.status_code >= 500:
                        self.sent.server_errors += 1
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                self.sent.errors[type(exc).__name__ if isinstance(exc, httpx.HTTPError) else str(exc)[:40]] += 1
            if indexes:
                self.sent.retries += 1
                time.sleep(0.5)


@dataclass
class PagesSeen:
    """What a CSM saw, from the requests that reached their endpoint (Apprise ``json://``), read as a
    receiver of at-least-once pages that honours ``Idempotency-Key`` reads them: a repeat of a key it
    has already taken is dropped (counted in ``resent``), so ``by_case`` holds what the CSM saw.

    A repeat comes from a worker SIGKILLed after sending a page and before recording it: its successor
    sends the same delivery again, under the same key. Two pages for one case under different keys are
    two deliveries, a real duplicate, and a page without a key could not be dropped at all: the audit
    fails on either."""

    by_case: Counter[str] = field(default_factory=Counter)
    keys: Counter[str] = field(default_factory=Counter)
    unkeyed: int = 0

    @property
    def resent(self) -> int:
        return sum(n - 1 for n in self.keys.values())

    @classmethod
    def of(cls, requests: list[dict[str, Any]]) -> PagesSeen:
        seen = cls()
        for request in requests:
            match = re.search(r"Case ([0-9a-f-]{36})", request["raw"].decode("utf-8", "replace"))
            key = request["headers"].get("idempotency-key")
            if key is None:
                seen.unkeyed += 1
            if key is None or seen.keys[key] == 0:
                seen.by_case[match.group(1) if match else "?"] += 1
            if key is not None:
                seen.keys[key] += 1
        return seen


# ---- reading back ----------------------------------------------------------------------------------
async def read_topic(bootstrap: str, topic: str, timeout_s: float = 20.0,
                     until: Callable[[list[Any]], bool] | None = None) -> list[Any]:
    """Every record on ``topic`` from the start, by direct partition assignment (no group join)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
            if until is not None:
                if until(records):
                    break
            else:
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                    break
        return records
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class PoisonSent:
    topic: str
    partition: int
    offset: int


async def feed_poison(bootstrap: str) -> list[PoisonSent]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = []
        for spec in ALL_TOPICS:
            for n, value in enumerate(POISON):
                meta = await (await producer.send(spec.name, value=value, key=f"chaos-poison-{n}".encode()))
                sent.append(PoisonSent(spec.name, meta.partition, meta.offset))
        return sent
    finally:
        await producer.stop()


def _header(record: Any, name: str) -> str:
    return next((v.decode("utf-8", "replace") for k, v in record.headers or () if k == name), "")


# ---- the reference for points ----------------------------------------------------------------------
def expected_balances(commerce: list[Any]) -> dict[str, int]:
    """The programme's rules (no welcome points, 1 point per unit from the 2nd purchase, returns take
    the order's points back without going below zero), applied once per order, in the order loyalty
    reads them (per customer, the partition's order). Written apart from the service, on purpose."""
    balance: dict[str, int] = defaultdict(int)
    purchases: dict[str, int] = defaultdict(int)
    held: dict[str, tuple[str, int]] = {}
    returned: set[str] = set()
    for event in commerce:
        if event.event_type == "purchase.recorded":
            if event.order_id in held:
                continue
            purchases[event.customer_id] += 1
            points = int(event.amount.to_integral_value(rounding=ROUND_FLOOR)) if purchases[event.customer_id] >= 2 else 0
            held[event.order_id] = (event.customer_id, points)
            balance[event.customer_id] += points
        elif event.order_id not in returned:
            returned.add(event.order_id)
            if event.order_id in held:
                customer, points = held[event.order_id]
                take = min(points, max(balance[customer], 0))
                balance[customer] -= take
                held[event.order_id] = (customer, points - take)
    return dict(balance)


# ---- the audit -------------------------------------------------------------------------------------
@dataclass
class Audit:
    accepted_feedback: int = 0
    accepted_commerce: int = 0
    rejected: int = 0
    scored: int = 0
    negatives: int = 0
    alerted: int = 0
    cases: int = 0
    pages: int = 0
    credited: int = 0
    customers_checked: int = 0
    dead_lettered: int = 0
    poison_sent: int = 0
    poison_dead_lettered: int = 0
    lost: dict[str, int] = field(default_factory=dict)
    duplicated: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    dlq_reasons: dict[str, str] = field(default_factory=dict)
    redelivered_copies: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (sum(self.lost.values()) == 0 and sum(self.duplicated.values()) == 0
                and self.poison_dead_lettered == self.poison_expected and self.unattributed_pages == 0
                and self.unkeyed_pages == 0
                and self.server_errors == 0)

    poison_expected: int = 0
    #: Pages whose text names no case: every page must say which case it is about.
    unattributed_pages: int = 0
    #: Pages received again under the same Idempotency-Key and dropped by the receiver (a send the
    #: killed worker made and could not record; see ``PagesSeen``). Not in ``pages``.
    pages_resent_same_key: int = 0
    #: Pages that came without an Idempotency-Key (a receiver could not drop their repeats).
    unkeyed_pages: int = 0
    #: Ingest answers of 5xx other than 503 seen by the client.
    server_errors: int = 0


def audit(config: StackConfig, items: list[dict[str, Any]], sent: Sent, poison: list[PoisonSent],
          receiver: StandInReceiver) -> Audit:
    result = Audit()
    bootstrap = config.bootstrap
    poisoned = {(p.topic, p.partition, p.offset) for p in poison}

    def records(topic: str) -> list[Any]:
        return [r for r in asyncio.run(read_topic(bootstrap, topic)) if (topic, r.partition, r.offset) not in poisoned]

    def note(kind: str, what: str) -> None:
        result.examples.setdefault(kind, [])
        if len(result.examples[kind]) < 5:
            result.examples[kind].append(what)

    accepted = {i: r for i, r in sent.final.items() if r["status"] in ("accepted", "duplicate")}
    result.rejected = sum(1 for r in sent.final.values() if r["status"] == "rejected")
    feedback_ids = {r["event_id"] for i, r in accepted.items() if items[i]["type"] in ("review", "mention")}
    commerce_ids = {r["event_id"] for i, r in accepted.items() if items[i]["type"] in ("purchase", "return")}
    result.accepted_feedback, result.accepted_commerce = len(feedback_ids), len(commerce_ids)
    result.lost["unanswered by ingest"] = len(items) - len(sent.final)
    result.server_errors = sent.server_errors

    # Ingest → feedback.received.v1 / commerce.events.v1: every accepted id is there, once per item.
    received = [FEEDBACK_RECEIVED.decode(r.value) for r in records(FEEDBACK_RECEIVED.name)]
    commerce = [COMMERCE_EVENTS.decode(r.value) for r in records(COMMERCE_EVENTS.name)]
    ids_per_item: dict[tuple[str, str], set[str]] = defaultdict(set)
    for event in received:
        ids_per_item[(event.source, event.external_id)].add(str(event.event_id))
    for event in commerce:
        ids_per_item[(event.event_type, event.order_id)].add(str(event.event_id))
    on_topics = {str(e.event_id) for e in received} | {str(e.event_id) for e in commerce}
    missing = (feedback_ids | commerce_ids) - on_topics
    result.lost["accepted, not published"] = len(missing)
    for event_id in sorted(missing):
        note("accepted, not published", event_id)
    twice = {k: v for k, v in ids_per_item.items() if len(v) > 1}
    result.duplicated["one item published under two ids"] = len(twice)
    for key in list(twice)[:5]:
        note("one item published under two ids", str(key))
    result.redelivered_copies["feedback.received.v1"] = len(received) - len({str(e.event_id) for e in received})

    # Sentiment → feedback.scored.v1: every accepted text scored, under one scored id.
    scored = [FEEDBACK_SCORED.decode(r.value) for r in records(FEEDBACK_SCORED.name)]
    scored_ids: dict[str, set[str]] = defaultdict(set)
    latest: dict[str, Any] = {}
    for score in scored:
        scored_ids[str(score.feedback_event_id)].add(str(score.event_id))
        latest[str(score.feedback_event_id)] = score
    result.scored = len(scored_ids.keys() & feedback_ids)
    result.lost["accepted, not scored"] = len(feedback_ids - scored_ids.keys())
    for event_id in sorted(feedback_ids - scored_ids.keys()):
        note("accepted, not scored", event_id)
    result.duplicated["scored twice under different ids"] = sum(1 for v in scored_ids.values() if len(v) > 1)
    result.redelivered_copies["feedback.scored.v1"] = len(scored) - sum(len(v) for v in scored_ids.values())

    # Alerts: every negative is in exactly one case; every paged case reached the CSM exactly once.
    negatives = {fid for fid, event in latest.items() if event.sentiment.label == "negative" and fid in feedback_ids}
    result.negatives = len(negatives)
    mongo: MongoClient[dict[str, Any]]
    with MongoClient(config.mongo_url, serverSelectionTimeoutMS=10_000) as mongo:
        cases: list[dict[str, Any]] = list(mongo["alerts"]["alerts"].find({}, {"feedback_event_ids": 1, "paged": 1}))
        outbox_stuck = mongo["alerts"]["outbox"].count_documents({"status": {"$in": ["pending", "sending", "dead"]}})
    in_cases = Counter(fid for case in cases for fid in case.get("feedback_event_ids", []))
    result.cases = len(cases)
    result.alerted = len(negatives & in_cases.keys())
    result.lost["negative, no case"] = len(negatives - in_cases.keys())
    for event_id in sorted(negatives - in_cases.keys()):
        note("negative, no case", event_id)
    result.duplicated["negative in two cases"] = sum(1 for n in in_cases.values() if n > 1)
    paged = {str(case["_id"]) for case in cases if case.get("paged")}
    seen = PagesSeen.of(receiver.snapshot())  # one snapshot of what arrived
    pages = dict(seen.by_case)
    result.unkeyed_pages = seen.unkeyed
    result.pages = sum(pages.values())
    result.lost["paged case, no page"] = len(paged - pages.keys())
    result.lost["page still in the outbox"] = outbox_stuck
    result.duplicated["case paged twice"] = sum(1 for case_id in paged if pages.get(case_id, 0) > 1)
    result.unattributed_pages = pages.get("?", 0)
    result.pages_resent_same_key = seen.resent
    for case_id in sorted(c for c in paged if pages.get(c, 0) > 1):
        note("case paged twice", case_id)

    # Loyalty: every balance equals the rules applied once per order, and no order is credited twice.
    expected = expected_balances(commerce)
    lower = higher = 0
    with httpx.Client(base_url=config.service_url("loyalty"),
                      headers={"Authorization": f"Bearer {config.api_key}"}, timeout=30) as client:
        for customer, balance in sorted(expected.items()):
            body = client.get(f"/v1/customers/{customer}/points", params={"limit": 500}).json()
            result.customers_checked += 1
            result.credited += sum(1 for entry in body["ledger"] if entry["points"] > 0)
            orders = Counter((e.get("order_id"), e.get("rule")) for e in body["ledger"] if e["points"] > 0)
            if body["balance"] > balance or any(n > 1 for n in orders.values()):
                higher += 1
                note("credited twice", f"{customer}: {body['balance']} != {balance}")
            elif body["balance"] < balance:
                lower += 1
                note("credit missing", f"{customer}: {body['balance']} != {balance}")
    result.lost["credit missing"] = lower
    result.duplicated["credited twice"] = higher

    # Dead letters: every poison message, once per consumer, with a reason; nothing real dead-lettered.
    wanted = {(p.topic, f"{p.partition}:{p.offset}", consumer) for p in poison for consumer in CONSUMERS.get(p.topic, ())}
    result.poison_sent = len(poison)
    result.poison_expected = len(wanted)
    found: set[tuple[str, str, str]] = set()
    real_dead = 0
    for spec in ALL_TOPICS:
        for record in asyncio.run(read_topic(bootstrap, spec.dlq_name)):
            result.dead_lettered += 1
            origin = (_header(record, DLQ_SOURCE_TOPIC_HEADER), _header(record, DLQ_SOURCE_OFFSET_HEADER),
                      _header(record, DLQ_CONSUMER_HEADER))
            reason = _header(record, DLQ_ERROR_HEADER)
            if origin in wanted and reason:
                found.add(origin)
                result.dlq_reasons.setdefault(f"{origin[0]} ({origin[2]})", reason[:120])
            elif origin not in wanted:
                real_dead += 1
                note("real event dead-lettered", f"{origin}: {reason[:200]}")
    result.poison_dead_lettered = len(found)
    result.lost["real event dead-lettered"] = real_dead
    for origin in sorted(wanted - found)[:5]:
        note("poison not dead-lettered", str(origin))
    return result


# ---- the run ---------------------------------------------------------------------------------------
def _signal_group(stack: EmbeddedStack, name: str, sig: signal.Signals) -> None:
    os.killpg(stack.children[name].popen.pid, sig)


def faults(stack: EmbeddedStack, plan: ChaosPlan, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """The schedule; each step is timed and logged."""
    done: list[dict[str, Any]] = []

    def step(what: str, action: Callable[[], None]) -> None:
        started = time.monotonic()
        log(f"  {what} …")
        action()
        done.append({"fault": what, "seconds": round(time.monotonic() - started, 1)})

    def kill_and_restart(name: str) -> Callable[[], None]:
        def action() -> None:
            stack.children.pop(name).kill()
            time.sleep(1.0)  # down for a moment: the client and the broker notice
            stack.start_service(name)
            stack.wait_ready([name])
        return action

    def kill_and_restart_replica(name: str) -> Callable[[], None]:
        """One replica of a worker killed: its partitions go to the others, then come back to it."""
        def action() -> None:
            child = f"{name}-{plan.replicas}"
            stack.children.pop(child).kill()
            time.sleep(1.0)
            stack.start_replica(name, plan.replicas)
        return action

    def kill(name: str) -> Callable[[], None]:
        return kill_and_restart_replica(name) if plan.replicas > 1 and name in STREAM_WORKERS else kill_and_restart(name)

    def pause(name: str, seconds: float) -> Callable[[], None]:
        def action() -> None:
            _signal_group(stack, name, signal.SIGSTOP)
            try:
                time.sleep(seconds)
            finally:
                _signal_group(stack, name, signal.SIGCONT)
        return action

    def replica_of(name: str) -> str:
        return f"replica {plan.replicas} of {plan.replicas} of {name}" if plan.replicas > 1 else name

    time.sleep(3)
    step(f"SIGKILL {replica_of('sentiment')} mid-stream, restart", kill("sentiment"))
    time.sleep(2)
    step("SIGKILL ingest under load, restart", kill_and_restart("ingest"))
    time.sleep(2)
    step(f"stop the broker for {plan.broker_stop_s:.0f}s under load", pause("broker", plan.broker_stop_s))
    time.sleep(2)
    step(f"SIGKILL {replica_of('alerts')} mid-stream, restart", kill("alerts"))
    time.sleep(2)
    step(f"SIGKILL {replica_of('loyalty')} mid-stream, restart", kill("loyalty"))
    time.sleep(2)
    step(f"stop the database for {plan.db_stop_s:.0f}s", pause("database", plan.db_stop_s))
    return done


def run(plan: ChaosPlan, log: Callable[[str], None] = print) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    pages = StandInReceiver()
    data_dir = Path(tempfile.mkdtemp(prefix="chaos-"))
    rules = data_dir / "rules.toml"
    # The packaged rules with the random surprise bonus off, so the audit's reference is exact.
    from importlib.resources import files

    packaged = Path(str(files("loyalty").joinpath("rules.toml"))).read_text("utf-8")
    rules.write_text(re.sub(r"(?m)^surprise_probability = .*$", "surprise_probability = 0", packaged), "utf-8")
    config = StackConfig(
        broker_port=free_port(), mongo_port=free_port(), data_dir=data_dir, api_key="chaos-key",
        service_ports={name: free_port() for name, _, _ in SERVICES}, group_prefix=f"chaos-{run_id}",
        extra_env={"ALERTS_FALLBACK_NOTIFY": json.dumps([pages.url("page")]),
                   "ALERTS_DELIVERY_POLL_S": "0.2", "LOYALTY_RULES_FILE": str(rules)},
    )
    stack = EmbeddedStack(config)
    items = make_load(plan.events, run_id)
    results: dict[str, Any] = {"plan": asdict(plan), "run": run_id}
    started = time.monotonic()
    try:
        log(f"Starting the embedded stack (logs in {stack.log_dir}) …")
        stack.start_infrastructure()
        stack.start_services()
        for name in STREAM_WORKERS:
            for replica in range(2, plan.replicas + 1):
                stack.start_replica(name, replica)
        client = Client(config.service_url("ingest"), config.api_key, items, plan.rate)
        client.start()
        log(f"Feeding {len(items)} events at {plan.rate:.0f}/s while the faults happen:")
        results["faults"] = faults(stack, plan, log)
        log("  poison to every topic …")
        poison = asyncio.run(feed_poison(config.bootstrap))
        client.full_speed.set()
        client.join(timeout=plan.settle_timeout_s)
        if client.is_alive() or client.failure is not None:
            raise RuntimeError(f"the client did not finish: {client.failure!r}")
        log(f"All {len(items)} events answered ({client.sent.retries} retries: {dict(client.sent.errors)}); "
            "waiting for the pipeline to settle …")
        deadline = time.monotonic() + plan.settle_timeout_s
        report = audit(config, items, client.sent, poison, pages)
        last_said = time.monotonic()
        while not report.ok and time.monotonic() < deadline:
            if time.monotonic() - last_said > 20:
                outstanding = {k: v for k, v in {**report.lost, **report.duplicated}.items() if v}
                log(f"  still settling: {outstanding or 'poison not all dead-lettered yet'}")
                last_said = time.monotonic()
            time.sleep(3)
            report = audit(config, items, client.sent, poison, pages)
        # It stays right: nothing arrives late and counts again.
        time.sleep(5)
        report = audit(config, items, client.sent, poison, pages)
        results.update(asdict(report), ok=report.ok, retries=client.sent.retries, client_errors=dict(client.sent.errors),
                       seconds=round(time.monotonic() - started, 1), logs=str(stack.log_dir))
    finally:
        stack.stop()
        pages.close()
    return results


def summary(r: dict[str, Any]) -> str:
    lost, dup = sum(r["lost"].values()), sum(r["duplicated"].values())
    lines = [
        f"Chaos run: {r['plan']['events']:,} events, {r['plan']['replicas']} replica(s) of each stream worker,"
        f" {r['seconds']:.0f}s, faults:",
        *[f"  - {f['fault']} ({f['seconds']:.1f}s)" for f in r["faults"]],
        f"  - poison: {r['poison_sent']} messages to {len(ALL_TOPICS)} topics",
        "",
        f"  accepted          {r['accepted_feedback']:,} texts + {r['accepted_commerce']:,} purchases/returns"
        f" ({r['rejected']} rejected; the client retried {r['retries']} times;"
        f" {r['server_errors']} answers of 5xx other than 503)",
        f"  scored            {r['scored']:,}",
        f"  alerted           {r['alerted']:,} negatives in {r['cases']:,} cases; {r['pages']:,} pages delivered"
        f" ({r['unattributed_pages']} naming no case, {r['unkeyed_pages']} without an Idempotency-Key;"
        f" {r['pages_resent_same_key']} more resent under a key already delivered, which the receiver"
        " dropped: sent by a killed worker that could not record them)",
        f"  credited          {r['credited']:,} ledger credits over {r['customers_checked']:,} customers",
        f"  dead-lettered     {r['dead_lettered']:,} (poison: {r['poison_dead_lettered']}/{r['poison_expected']}"
        " expected, each with its reason)",
        f"  lost              {lost}" + ("" if not lost else "  " + json.dumps({k: v for k, v in r['lost'].items() if v})),
        f"  duplicated        {dup}" + ("" if not dup else "  " + json.dumps({k: v for k, v in r['duplicated'].items() if v})),
        f"  redelivered copies (same id, absorbed downstream): {r['redelivered_copies']}",
    ]
    if r["examples"]:
        lines.append(f"  examples: {json.dumps(r['examples'], indent=2)}")
    lines.append("  OK" if r["ok"] else "  FAILED")
    return "\n".join(lines)


def main() -> int:
    events = int(os.environ.get("CHAOS_EVENTS", "0") or 0)
    short = os.environ.get("CHAOS_SHORT", "") not in ("", "0")
    plan = (ChaosPlan.short(events or 400) if short else ChaosPlan.full(events or 3000))
    plan = dataclasses.replace(plan, replicas=max(1, int(os.environ.get("CHAOS_REPLICAS", "1") or 1)))
    results = run(plan)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print("\n" + summary(results))
    print(f"\nWrote {OUT / 'results.json'}")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
