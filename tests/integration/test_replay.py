"""``feedbackctl replay``: re-score a time range of history; consumers stay idempotent."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from feedback_shared.topics import FEEDBACK_SCORED
from feedback_tools.devstack import EmbeddedStack
from tests.helpers import Receiver, eventually, read_topic

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]


def test_replay_rescores_a_time_range_without_paging_again(api: Api, stack: EmbeddedStack, receiver: Receiver) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    csm, customer = f"csm-{uuid.uuid4().hex[:8]}", f"cust-{uuid.uuid4().hex[:8]}"
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Sara", "notify": [receiver.url(csm)]}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm}).raise_for_status()
    texts = ["Terrible support, the refund never came and nobody answers!", "Fast delivery, thank you.",
             "¿Tienen esta chaqueta en talla M?"]
    ids = []
    for n, text in enumerate(texts):
        resp = api("ingest").post("/v1/reviews", json={"source": "google", "external_id": f"{customer}-{n}",
                                                       "customer_id": customer, "text": text})
        ids.append(resp.json()["event_id"])

    def scored_ids() -> Counter[str]:
        records = asyncio.run(read_topic(stack.config.bootstrap, FEEDBACK_SCORED.name, timeout_s=3))
        events = [FEEDBACK_SCORED.decode(r.value) for r in records]
        return Counter(str(e.event_id) for e in events if str(e.feedback_event_id) in ids)

    first = eventually(lambda: (c := scored_ids()) and len(c) == 3 and c, timeout_s=30, interval_s=1)
    eventually(lambda: receiver.bodies(csm), timeout_s=30)

    env = {**os.environ, "FEEDBACK_BROKER_PORT": str(stack.config.broker_port)}
    result = subprocess.run([sys.executable, "-m", "feedback_tools.ctl", "replay", "--since", since.isoformat(),
                             "--json"], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["read"] >= 3 and summary["scored"] == summary["read"] - summary["undecodable"]
    assert summary["model_version"]

    # The same model re-scores under the same event ids: every consumer sees a redelivery.
    again = eventually(lambda: (c := scored_ids()) and all(c[i] >= 2 for i in first) and c, timeout_s=30,
                       interval_s=1)
    assert set(again) == set(first)
    time.sleep(2)
    assert len(receiver.bodies(csm)) == 1
    cases = list(api("alerts").get("/v1/alerts", params={"csm": csm}).json())
    assert len(cases) == 1 and cases[0]["event_count"] == 1
