"""Signed webhooks in the Standard Webhooks form, both ways.

Headers: ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, several space-separated during a key
rotation). A secret written ``whsec_<base64>`` is base64-decoded; any other string is used as is.
The timestamp tolerance stops a captured request from being replayed later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

from feedback_shared.errors import SignatureError

__all__ = ["DEFAULT_TOLERANCE_S", "SignatureError", "sign", "signed_headers", "verify"]

DEFAULT_TOLERANCE_S = 300


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sign(secret, msg_id, ts, body)}


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> str:
    """Check the signature and the timestamp; return the message id.

    Raises:
        SignatureError: naming what is wrong (missing header, stale timestamp, bad signature).
    """
    msg_id = headers.get("webhook-id") or ""
    timestamp = headers.get("webhook-timestamp") or ""
    signatures = headers.get("webhook-signature") or ""
    missing = [h for h, v in (("webhook-id", msg_id), ("webhook-timestamp", timestamp),
                              ("webhook-signature", signatures)) if not v]
    if missing:
        raise SignatureError(f"missing header(s): {', '.join(missing)}")
    # ASCII digits only ("²" and "٣" are digits to isdigit, not to int), and few enough to be a time.
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 15:
        raise SignatureError("webhook-timestamp must be Unix seconds")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > tolerance_s:
        raise SignatureError(f"webhook-timestamp is {age:+.0f}s from now; tolerance is {tolerance_s}s")
    try:
        expected = sign(secret, msg_id, int(timestamp), body)
    except UnicodeEncodeError:  # a lone surrogate in the id: nobody could have signed it
        raise SignatureError("webhook-id is not valid Unicode text") from None
    # compare_digest refuses non-ASCII strings with a TypeError; no such candidate can match anyway.
    if not any(c.isascii() and hmac.compare_digest(expected, c) for c in signatures.split()):
        raise SignatureError("webhook-signature does not match the body")
    return msg_id
