"""make chaos reads its CSM endpoint as a receiver honouring Idempotency-Key: a resend of a delivery (a
worker killed between sending and recording) is dropped, while two deliveries for one case, or a page
with no key, still show up in the audit's counts."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from feedback_tools.chaos import PagesSeen
from feedback_tools.receiver import StandInReceiver

CASE_A = "6a1f3c2e-0000-4000-8000-00000000000a"
CASE_B = "6a1f3c2e-0000-4000-8000-00000000000b"


@pytest.fixture
def endpoint() -> Iterator[StandInReceiver]:
    receiver = StandInReceiver()
    yield receiver
    receiver.close()


def page(receiver: StandInReceiver, case: str, key: str | None) -> None:
    headers = {"Idempotency-Key": key} if key else {}
    response = httpx.post(f"http://127.0.0.1:{receiver.port}/page", json={"body": f"Case {case} needs you"},
                          headers=headers)
    assert response.status_code == 200  # a dropped repeat is still acknowledged, or the sender retries


def test_a_resend_under_the_same_key_is_dropped_and_counted(endpoint: StandInReceiver) -> None:
    page(endpoint, CASE_A, "delivery-1")
    page(endpoint, CASE_A, "delivery-1")
    page(endpoint, CASE_B, "delivery-2")
    seen = PagesSeen.of(endpoint.snapshot())
    assert seen.by_case == {CASE_A: 1, CASE_B: 1}
    assert seen.resent == 1 and seen.unkeyed == 0


def test_two_deliveries_for_one_case_are_both_seen(endpoint: StandInReceiver) -> None:
    page(endpoint, CASE_A, "delivery-1")
    page(endpoint, CASE_A, "delivery-3")
    assert PagesSeen.of(endpoint.snapshot()).by_case[CASE_A] == 2  # the audit calls this "case paged twice"


def test_pages_without_a_key_are_never_dropped_and_are_counted(endpoint: StandInReceiver) -> None:
    page(endpoint, CASE_A, None)
    page(endpoint, CASE_A, None)
    seen = PagesSeen.of(endpoint.snapshot())
    assert seen.by_case[CASE_A] == 2 and seen.unkeyed == 2


def test_a_receiver_taken_down_answers_503_and_records_nothing(endpoint: StandInReceiver) -> None:
    endpoint.up = False
    assert httpx.post(f"http://127.0.0.1:{endpoint.port}/page", json={}).status_code == 503
    assert endpoint.received == [] and endpoint.count == 0
