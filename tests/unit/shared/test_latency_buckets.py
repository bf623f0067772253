from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, generate_latest

from feedback_shared.metrics import latency_histogram
from feedback_tools.bench import buckets, parse_samples, quantile


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    return parse_samples(generate_latest(registry).decode())


def test_a_p99_near_the_alert_target_is_read_to_a_quarter_second() -> None:
    """2 of 100 alerts at 1.1 s: the p99 is 1.0-1.25 s, not anywhere in 1.0-1.5 s (half-second buckets put it
    at 1.25 whatever the slow ones took, below 1.5 s or not)."""
    registry = CollectorRegistry()
    histogram = latency_histogram("feedback_to_alert_seconds", "test", registry)
    before = buckets(_samples(registry), "feedback_to_alert_seconds")
    for _ in range(98):
        histogram.observe(0.3)
    for _ in range(2):
        histogram.observe(1.1)
    after = buckets(_samples(registry), "feedback_to_alert_seconds")
    p99 = quantile(0.99, before, after)
    assert p99 is not None and 1.0 < p99 <= 1.25
    bounds = [le for le, _ in after]
    assert [b for b in bounds if 0.5 <= b <= 2.0] == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert re.search(r'le="2\.5"', generate_latest(registry).decode())
