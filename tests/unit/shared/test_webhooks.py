from __future__ import annotations

import pytest

from feedback_shared.webhooks import SignatureError, sign, signed_headers, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_standard_webhooks_reference_vector() -> None:
    # The example from the Standard Webhooks specification.
    body = b'{"test": 2432232314}'
    assert sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_verify_accepts_a_fresh_signature_among_several() -> None:
    body = b'{"id": 1}'
    headers = signed_headers(SECRET, "msg-1", body, timestamp=1_000_000)
    headers["webhook-signature"] = "v1,b2xkLXNpZw== " + headers["webhook-signature"]
    assert verify(SECRET, headers, body, now=1_000_010) == "msg-1"


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda h, b: (h, b + b" "), "does not match"),
        (lambda h, b: ({**h, "webhook-id": "msg-2"}, b), "does not match"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "missing header"),
        (lambda h, b: ({**h, "webhook-timestamp": "yesterday"}, b), "Unix seconds"),
    ],
)
def test_verify_refuses_tampering(tamper: object, message: str) -> None:
    body = b'{"id": 1}'
    headers, body2 = tamper(signed_headers(SECRET, "msg-1", body, timestamp=1_000_000), body)  # type: ignore[operator]
    with pytest.raises(SignatureError, match=message):
        verify(SECRET, headers, body2, now=1_000_000)


def test_verify_refuses_replays_outside_the_tolerance() -> None:
    headers = signed_headers(SECRET, "msg-1", b"{}", timestamp=1_000_000)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(SECRET, headers, b"{}", now=1_000_000 + 301)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(SECRET, headers, b"{}", now=1_000_000 - 301)
