"""The stand-in receiver keeps a client's connection open between requests, as real webhook receivers
do, and drops it when closed."""

from __future__ import annotations

import httpx
import pytest

from feedback_tools.receiver import StandInReceiver


def test_one_connection_carries_many_pages_and_close_drops_it() -> None:
    receiver = StandInReceiver()
    connects: list[object] = []
    try:
        with httpx.Client() as client:
            for i in range(5):
                response = client.post(receiver.url(f"page{i}", scheme="http"), json={"n": i})
                assert response.status_code == 200
                connects.append(len(receiver._connections))
            assert receiver.count == 5
            assert connects == [1, 1, 1, 1, 1]  # one open connection throughout
            receiver.up = False
            assert client.post(receiver.url("down", scheme="http"), json={}).status_code == 503
            receiver.close()
            with pytest.raises(httpx.TransportError):
                client.post(receiver.url("after", scheme="http"), json={})
    finally:
        receiver.up = True
