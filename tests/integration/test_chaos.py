"""The short form of ``make chaos``: every worker SIGKILLed and restarted, the broker and the database
paused, poison on every topic, then an audit of what went in against what came out."""

from __future__ import annotations

import pytest

from feedback_shared.topics import ALL_TOPICS
from feedback_tools.chaos import CONSUMERS, POISON, ChaosPlan, run

pytestmark = pytest.mark.integration


def test_chaos_short_form_loses_nothing_and_counts_nothing_twice() -> None:
    said: list[str] = []
    results = run(ChaosPlan.short(300), log=said.append)

    assert [f["fault"].split()[0] for f in results["faults"]] == ["SIGKILL", "SIGKILL", "stop", "SIGKILL",
                                                                  "SIGKILL", "stop"]
    assert results["lost"] and all(v == 0 for v in results["lost"].values()), results["lost"]
    assert results["duplicated"] and all(v == 0 for v in results["duplicated"].values()), results["duplicated"]
    # Everything the client sent was answered and went all the way through.
    assert results["accepted_feedback"] + results["accepted_commerce"] + results["rejected"] == 300
    assert results["scored"] == results["accepted_feedback"] > 0
    assert results["alerted"] == results["negatives"] > 0
    assert results["pages"] >= results["cases"] > 0 and results["unattributed_pages"] == 0
    assert results["unkeyed_pages"] == 0  # every page can be told from a resend of itself
    assert results["credited"] > 0
    assert results["server_errors"] == 0, results["client_errors"]
    # Every poison message dead-lettered by every agent that reads its topic, each with a reason.
    assert results["poison_sent"] == len(POISON) * len(ALL_TOPICS)
    assert results["poison_expected"] == len(POISON) * sum(len(c) for c in CONSUMERS.values())
    assert results["poison_dead_lettered"] == results["poison_expected"]
    assert len(results["dlq_reasons"]) == sum(len(c) for c in CONSUMERS.values())
    assert all(reason for reason in results["dlq_reasons"].values())
    assert results["ok"] is True
