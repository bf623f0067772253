"""The bench starts its incident only once every consumer group has caught up (``consumer_lag`` 0)."""

from __future__ import annotations

import pytest

from feedback_tools import bench


def test_settled_needs_every_partition_of_every_service_at_zero_lag(monkeypatch: pytest.MonkeyPatch) -> None:
    pages: dict[str, dict[str, float]] = {
        "sentiment": {'consumer_lag{group="s",topic="feedback.received.v1",partition="0"}': 0.0},
        "alerts": {'consumer_lag{group="a",topic="feedback.scored.v1",partition="0"}': 0.0,
                   'consumer_lag{group="a",topic="feedback.scored.v1",partition="1"}': 3.0,
                   "alerts_feedback_handled_total": 10.0},
        "ingest": {"ingest_accepted_total": 5.0},  # no consumer: nothing to wait for
    }

    def scrape(url: str) -> dict[str, float]:
        return pages[url]

    def url(name: str) -> str:
        return name

    monkeypatch.setattr(bench, "scrape", scrape)
    assert not bench.settled(url, list(pages))  # three messages on one alerts partition not committed
    pages["alerts"]['consumer_lag{group="a",topic="feedback.scored.v1",partition="1"}'] = 0.0
    assert bench.settled(url, list(pages))


def test_the_report_says_how_long_the_incident_waited() -> None:
    import json
    from pathlib import Path

    results = json.loads((Path(__file__).parent / "bench_results_sample.json").read_text())
    assert "started once the pipeline had settled, 12.5 s after the mixed load" in bench.report(
        {**results, "incident_settle_s": 12.5})
