"""``free_port``: ports the stack's servers can bind, which no outgoing connection can take meanwhile."""

import socket

from feedback_tools import devstack
from feedback_tools.devstack import _ephemeral_range, free_port


def test_ports_are_distinct_and_below_the_ephemeral_range() -> None:
    low, _ = _ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(port < low for port in ports)


def test_a_port_held_by_a_listener_is_skipped(monkeypatch) -> None:
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind(("127.0.0.1", 0))
    held.listen()
    try:
        taken = held.getsockname()[1]
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.bind(("127.0.0.1", 0))
        spare = probe.getsockname()[1]
        probe.close()
        picks = iter([taken, spare])
        monkeypatch.setattr(devstack.random, "randrange", lambda *_: next(picks))
        assert free_port() == spare
    finally:
        held.close()
