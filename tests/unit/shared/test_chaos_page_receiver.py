"""make chaos's CSM endpoint honours Idempotency-Key: a resend of a delivery (a worker killed between
sending and recording) is dropped, while two deliveries for one case, or a page with no key, still
show up in the audit's counts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import httpx
import pytest

from feedback_shared.chaos import PageRecorder

CASE_A = "6a1f3c2e-0000-4000-8000-00000000000a"
CASE_B = "6a1f3c2e-0000-4000-8000-00000000000b"


@pytest.fixture
def endpoint() -> Iterator[str]:
    PageRecorder.reset()
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageRecorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/page"
    server.shutdown()
    PageRecorder.reset()


def page(url: str, case: str, key: str | None) -> None:
    headers = {"Idempotency-Key": key} if key else {}
    response = httpx.post(url, json={"body": f"Case {case} needs you"}, headers=headers)
    assert response.status_code == 200  # a dropped repeat is still acknowledged, or the sender retries


def test_a_resend_under_the_same_key_is_dropped_and_counted(endpoint: str) -> None:
    page(endpoint, CASE_A, "delivery-1")
    page(endpoint, CASE_A, "delivery-1")
    page(endpoint, CASE_B, "delivery-2")
    assert PageRecorder.pages == {CASE_A: 1, CASE_B: 1}
    assert sum(n - 1 for n in PageRecorder.keys.values()) == 1
    assert PageRecorder.unkeyed == 0


def test_two_deliveries_for_one_case_are_both_seen(endpoint: str) -> None:
    page(endpoint, CASE_A, "delivery-1")
    page(endpoint, CASE_A, "delivery-3")
    assert PageRecorder.pages[CASE_A] == 2  # the audit calls this "case paged twice"


def test_pages_without_a_key_are_never_dropped_and_are_counted(endpoint: str) -> None:
    page(endpoint, CASE_A, None)
    page(endpoint, CASE_A, None)
    assert PageRecorder.pages[CASE_A] == 2
    assert PageRecorder.unkeyed == 2
