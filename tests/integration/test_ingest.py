"""Ingest against the real broker and database: restarts, outages, the seed documents, fuzzing."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from feedback_shared.topics import FEEDBACK_RECEIVED
from feedback_tools.devstack import EmbeddedStack, StackConfig, free_port
from tests.helpers import read_topic, uid

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]
SEEDS = sorted((Path(__file__).parent.parent / "fixtures" / "seeds").glob("*.txt"))



def received(stack: EmbeddedStack, event_ids: set[str]) -> dict[str, Any]:
    records = asyncio.run(read_topic(stack.config.bootstrap, FEEDBACK_RECEIVED.name, timeout_s=20,
                                     until=lambda recs: event_ids <= {_event_id(r) for r in recs}))
    found: dict[str, Any] = {}
    for record in records:
        if _event_id(record) in event_ids:
            found.setdefault(_event_id(record), []).append(FEEDBACK_RECEIVED.decode(record.value))
    return found


def _event_id(record: Any) -> str:
    try:
        return str(json.loads(record.value)["event_id"])
    except (ValueError, KeyError, TypeError):
        return ""


def test_each_seed_document_arrives_on_the_topic_unchanged_apart_from_nfc(api: Api, stack: EmbeddedStack) -> None:
    assert len(SEEDS) == 5
    sent: dict[str, str] = {}
    for path in SEEDS:
        text = path.read_text(encoding="utf-8")
        resp = api("ingest").post("/v1/reviews", json={"source": "web_form", "external_id": uid(path.stem),
                                                       "text": text})
        assert resp.status_code == 202, resp.text[:300]
        sent[resp.json()["event_id"]] = text
    found = received(stack, set(sent))
    assert set(found) == set(sent)
    for event_id, original in sent.items():
        [event] = found[event_id]
        assert event.text == unicodedata.normalize("NFC", original)
        assert (event.text_original or event.text) == original
    # The seeds' own quirks survive: Armenian comma, NO-BREAK SPACE, Uzbek apostrophes, Georgian script.
    texts = "".join(e[0].text for e in found.values())
    for quirk in ("\u055d", "\u00a0", "o'", "ქ", "ә"):
        assert quirk in texts


def test_a_repeat_after_an_ingest_restart_is_still_a_duplicate(api: Api, stack: EmbeddedStack) -> None:
    review = {"source": "google", "external_id": uid("restart"), "text": "Arrived late, box crushed."}
    first = api("ingest").post("/v1/reviews", json=review)
    assert first.status_code == 202
    stack.children.pop("ingest").stop()
    stack.start_service("ingest")
    stack.wait_ready(["ingest"])
    again = api("ingest").post("/v1/reviews", json=review)
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}


@pytest.fixture
def own_broker_and_ingest(stack: EmbeddedStack, tmp_path: Path) -> Iterator[EmbeddedStack]:
    """A broker and an ingest of their own (on the session's database), so stopping this broker
    leaves the rest of the suite alone."""
    own = EmbeddedStack(StackConfig(
        broker_port=free_port(), data_dir=tmp_path, api_key="outage-key",
        service_ports={"ingest": free_port()}, external_mongo_url=stack.config.mongo_url,
        extra_env={"INGEST_KAFKA__PUBLISH_TIMEOUT_S": "3",
                   "INGEST_MONGO__DATABASE": f"ingest_{uuid.uuid4().hex[:6]}"},
    ))
    try:
        own.start_infrastructure()
        own.start_services(["ingest"])
        yield own
    finally:
        broker = own.children.get("broker")
        if broker is not None and broker.alive():
            os.kill(broker.popen.pid, signal.SIGCONT)
        own.stop()


def test_broker_outage_answers_503_then_nothing_is_lost(own_broker_and_ingest: EmbeddedStack) -> None:
    own = own_broker_and_ingest
    bootstrap, broker = own.config.bootstrap, own.children["broker"]
    client = httpx.Client(base_url=own.config.service_url("ingest"), headers={"Authorization": "Bearer outage-key"}, timeout=30)
    before = {"source": "google", "external_id": uid("before"), "text": "Fine, but slow delivery."}
    during = {"source": "google", "external_id": uid("during"), "text": "Nobody answers the phone."}
    accepted = [client.post("/v1/reviews", json=before).json()["event_id"]]

    os.kill(broker.popen.pid, signal.SIGSTOP)  # the broker stops answering, as in a network partition
    try:
        refused = client.post("/v1/reviews", json=during)
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) > 0
        assert "nothing was accepted" in refused.json()["detail"]
        assert client.get("/healthz").status_code == 200
    finally:
        os.kill(broker.popen.pid, signal.SIGCONT)

    retried = client.post("/v1/reviews", json=during)
    assert retried.status_code == 202, retried.text
    accepted.append(retried.json()["event_id"])
    assert client.post("/v1/reviews", json=during).status_code == 200  # and now it is a duplicate

    records = asyncio.run(read_topic(bootstrap, FEEDBACK_RECEIVED.name, timeout_s=10))
    on_topic = [str(FEEDBACK_RECEIVED.decode(r.value).event_id) for r in records]
    for event_id in accepted:
        assert on_topic.count(event_id) >= 1, f"{event_id} was acknowledged but is not on the topic"
    externals = [FEEDBACK_RECEIVED.decode(r.value).external_id for r in records]
    assert during["external_id"] in externals
    client.close()


# ---- schemathesis: every operation of the ingest schema, generated inputs, no 5xx ------------------
def test_ingest_api_never_answers_5xx(stack: EmbeddedStack) -> None:
    """Generated requests for every operation (valid and invalid by the schema); none may get a 5xx.

    Driven through hypothesis directly: schemathesis' lazy pytest fixture loader does not work with
    pytest 9 yet.
    """
    auth = {"Authorization": f"Bearer {stack.config.api_key}"}
    schema = schemathesis.openapi.from_url(f"{stack.config.service_url('ingest')}/openapi.json", headers=auth)
    tried: dict[str, int] = {}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation, mode in itertools.product(operations, schemathesis.GenerationMode):

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            response = case.call(headers=auth, timeout=30)
            label = f"{case.method} {case.path} ({case.meta.generation.mode.value if case.meta else '?'})"
            tried[label] = tried.get(label, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{label} -> {response.status_code}: {response.text[:200]}")

        try:
            check()
        except Unsatisfiable:
            # An operation without inputs (GET /healthz) has no invalid variant to generate.
            assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    print(f"schemathesis tried {sum(tried.values())} requests: {tried}")  # noqa: T201
    assert len(tried) >= 16, tried
    assert sum(tried.values()) >= 100
    assert failures == []


def test_feedbackctl_import_of_10000_rows_counts_what_the_file_holds(
    own_broker_and_ingest: EmbeddedStack, tmp_path: Path
) -> None:
    """A 10,000-line JSONL file: 9,000 new items (API and export shapes, purchases), 500 repeats,
    400 invalid rows and 100 lines that are not JSON. The summary must match the file exactly."""
    own = own_broker_and_ingest
    run = uuid.uuid4().hex[:6]
    lines: list[str] = []
    for i in range(9000):
        if i % 3 == 0:
            row: dict[str, Any] = {"type": "review", "source": "google", "external_id": f"{run}-{i}",
                                   "text": f"Delivery number {i} was late again", "rating": 2}
        elif i % 3 == 1:
            row = {"id": f"{run}-{i}", "content": f"Отличный сервис, заказ {i}", "stars": "5",
                   "created_at": "2026-11-01T09:30:00Z", "user": {"name": "Ольга"}}
        else:
            row = {"type": "purchase", "order_id": f"{run}-o{i}", "customer_id": f"c-{i % 50}",
                   "amount": "19.90", "currency": "EUR"}
        lines.append(json.dumps(row, ensure_ascii=False))
    lines += [lines[i] for i in range(0, 1000, 2)]  # 500 repeats
    lines += [json.dumps({"type": "review", "source": "google", "external_id": f"{run}-bad-{i}",
                          "text": "x", "rating": 9}) for i in range(200)]
    lines += [json.dumps({"id": f"{run}-empty-{i}", "content": ""}) for i in range(200)]
    lines += [f"{{not json {i}" for i in range(100)]
    path = tmp_path / "feedback.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert len(path.read_text(encoding="utf-8").splitlines()) == 10_000

    env = {**os.environ, "FEEDBACK_INGEST_PORT": str(own.config.service_ports["ingest"]),
           "FEEDBACK_API_KEY": own.config.api_key}
    result = subprocess.run([sys.executable, "-m", "feedback_tools.ctl", "import", str(path), "--source", "shop",
                             "--json"], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["rows"] == 10_000
    assert (summary["accepted"], summary["duplicates"], summary["rejected"], summary["unavailable"]) == (
        9000, 500, 500, 0)
    rejected = [json.loads(line) for line in Path(summary["rejected_file"]).read_text().splitlines()]
    assert len(rejected) == 500
    reasons = json.dumps([r["errors"] for r in rejected])
    assert "rating" in reasons and "text" in reasons and "not JSON" in reasons
