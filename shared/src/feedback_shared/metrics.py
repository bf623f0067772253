"""Prometheus helpers shared by the services' own ``metrics.py`` modules.

Names use base units (``*_seconds``, ``*_total``); label values are small, fixed sets and never hold
customer identifiers.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

#: Buckets for pipeline latencies, from tens of milliseconds to a minute; every quarter second from 0.5 to
#: 2 s, around the 2 s alert target: ``histogram_quantile`` interpolates linearly inside a bucket, so with
#: half-second buckets a p99 (and make bench's per-quarter p99) could only say "somewhere in 1.0-1.5 s".
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 5.0, 10.0, 30.0,
                   60.0)


def dlq_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "dlq_messages", "Messages sent to a dead-letter topic, by source topic.", ["topic"],
        registry=registry,
    )


def stall_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "stream_stalls", "Times a partition stopped on an error no rule classifies (retried, never acked), by topic.",
        ["topic"], registry=registry,
    )


def latency_histogram(name: str, documentation: str, registry: CollectorRegistry) -> Histogram:
    return Histogram(name, documentation, buckets=LATENCY_BUCKETS, registry=registry)
