"""Surveys in, insights out, from the outside as issue 18 states it: with the demo feed sent as ``make run``
sends it, a detractor's answer in Georgian (NPS 2) is accepted (202), opens a case within 2 s, appears in
``GET /v1/insights`` under its need with the NPS counted, and the same answer again is 200 ``duplicate``.
The demo feed's surveys show across touch points, with the gap between the feeling expected and the one
perceived at each (SUR-3)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from feedback_tools.ctl import send_demo
from feedback_tools.devstack import EmbeddedStack
from tests.helpers import alerts_for, eventually, uid

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]
#: The issue's promise: a detractor's answer opens a case within 2 s.
CASE_WITHIN_S = 2.0


def test_a_georgian_detractor_opens_a_case_and_counts_in_insights_once(api: Api, stack: EmbeddedStack) -> None:
    accepted, failed = send_demo(stack.config)
    assert failed == 0 and accepted >= 60
    customer = uid("cust-ka")
    api("alerts").put(f"/v1/accounts/{customer}", json={"language": "ka"}).raise_for_status()
    answer = {"survey_id": "nps-2026-q4", "customer_id": customer, "nps": 2, "touch_point": "staff",
              "journey_stage": "post_purchase",
              "text": "საშინელი მომსახურება: შეკვეთა ორი კვირით დაგვიანდა და არავინ მპასუხობს."}
    before = api("alerts").get("/v1/insights").json()["totals"]
    sent_at = time.monotonic()
    first = api("ingest").post("/v1/surveys", json=answer)
    assert first.status_code == 202, first.text
    [case] = eventually(lambda: alerts_for(api, customer), timeout_s=30, interval_s=0.1)
    polled_s = time.monotonic() - sent_at
    # Measured by the servers' own clocks, not the poll's granularity: from ingest taking the answer in
    # (the event's ``ingested_at``, carried onto the case) to alerts creating the case.
    assert case.get("feedback_ingested_at") and case.get("created_at"), case
    ingested_at = datetime.fromisoformat(case["feedback_ingested_at"])
    created_at = datetime.fromisoformat(case["created_at"])
    opened_s = (created_at - ingested_at).total_seconds()
    print(f"\nsurvey detractor -> case in {opened_s:.2f}s (server clocks; {polled_s:.2f}s as polled)")  # noqa: T201
    assert 0 <= opened_s <= CASE_WITHIN_S, (
        f"the case opened {opened_s:.2f}s after ingest took the answer in (ingested_at {ingested_at.isoformat()}, "
        f"case created_at {created_at.isoformat()}); issue 18 asks for a case within {CASE_WITHIN_S:.0f} s")
    assert case["priority"] in ("normal", "high", "critical")

    again = api("ingest").post("/v1/surveys", json=answer)
    assert again.status_code == 200 and again.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}

    def mine() -> list[dict[str, Any]]:
        items = api("alerts").get("/v1/insights/items", params={"touch_point": "staff", "limit": 500}).json()
        return [i for i in items if i.get("customer_id") == customer]

    [item] = eventually(mine, timeout_s=30, interval_s=0.5)
    assert item["nps"] == 2, item
    needs = [n["need"] for n in item["needs"]]
    assert needs, "the detractor's text names a need"
    body = api("alerts").get("/v1/insights").json()
    assert body["totals"]["detractors"] >= before["detractors"] + 1
    assert set(needs) & {s["group"] for s in body["series"]}, needs
    assert set(needs) & {d["need"] for d in body["drivers"] if d["detractors"] > 0}, body["drivers"]
    time.sleep(1.5)  # the resend, had it counted, would be in by now (the read model lags at most a second)
    assert len(mine()) == 1

    # The demo feed's surveys, across touch points and two weeks.
    def demo_counted() -> dict[str, Any] | None:
        body: dict[str, Any] = api("alerts").get("/v1/insights", params={"by": "touch_point"}).json()
        groups = {s["group"] for s in body["series"]} - {"none"}
        # SUR-3: the demo feed's consultants fell short of what their customers expected.
        short = [g for g in body["expectations"] if g["touch_point"] == "consultants" and (g["gap"] or 0) < 0]
        return body if len(groups) >= 5 and body["totals"]["answers"] >= 20 and short else None

    by_touch_point = eventually(demo_counted, timeout_s=60, interval_s=1)
    print("demo totals:", by_touch_point["totals"])  # noqa: T201
    assert len({s["group"] for s in by_touch_point["series"]} - {"none"}) >= 5
    assert by_touch_point["totals"]["nps"] is not None
    print("expected vs perceived:", by_touch_point["expectations"])  # noqa: T201
    assert len(by_touch_point["expectations"]) >= 5
