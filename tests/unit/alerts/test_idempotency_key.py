"""Pages to HTTP channels carry the delivery id as an ``Idempotency-Key`` header (a repeat after a crash
can be dropped by the receiver), and so do e-mails; URLs of channels that cannot carry one are left alone."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from alerts.notifier import send_with_apprise, with_idempotency_key
from feedback_shared.outbound import OutboundPolicy
from feedback_tools.devstack import free_port
from feedback_tools.receiver import StandInReceiver

LOOPBACK = OutboundPolicy(allow_hosts=frozenset({"127.0.0.0/8"}))


@pytest.fixture
def receiver() -> Iterator[StandInReceiver]:
    server = StandInReceiver()
    yield server
    server.close()


def test_the_same_delivery_reaches_the_receiver_with_the_same_key(receiver: StandInReceiver) -> None:
    url = receiver.url("page")
    for _ in range(2):  # a retry of one delivery
        send_with_apprise(with_idempotency_key(url, "5f0c-delivery"), "title", "body", LOOPBACK)
    send_with_apprise(with_idempotency_key(f"{url}?method=POST", "other delivery/1"), "title", "body", LOOPBACK)
    assert [r["headers"].get("idempotency-key") for r in receiver.received] == [
        "5f0c-delivery", "5f0c-delivery", "other delivery/1"]


def test_an_email_page_carries_the_key_in_its_headers() -> None:
    received: list[Message] = []

    class Mailbox:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(message_from_bytes(envelope.content))
            return "250 OK"

    port = free_port()
    controller = Controller(Mailbox(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        url = f"mailto://127.0.0.1:{port}?from=alerts@feedback.local&to=csm@example.com&mode=insecure"
        for _ in range(2):
            send_with_apprise(with_idempotency_key(url, "5f0c-delivery"), "title", "body")
    finally:
        controller.stop()
    assert [m["Idempotency-Key"] for m in received] == ["5f0c-delivery", "5f0c-delivery"]
    assert [m["To"] for m in received] == ["csm@example.com"] * 2  # the header did not disturb the address


@pytest.mark.parametrize("url", ["slack://a/b/c", "msteams://x/y", "discord://a/b"])
def test_channels_without_headers_are_left_alone(url: str) -> None:
    assert with_idempotency_key(url, "k") == url
