"""Fuzzing webhook signature verification, the signed-webhook intake route and the API-key header.

Properties:
- ``verify`` on any headers and body returns the message id only for a valid, fresh signature, and
  otherwise raises ``SignatureError`` with a reason; never another exception;
- signing then verifying round-trips for any id, body and secret; any other body, or a timestamp
  outside the tolerance, is refused;
- ``POST /v1/webhooks/{source}`` answers 401 naming the problem for any unsigned or wrongly signed
  request, and for any signed body 200 (per-item results, every refusal with its errors) or 422 with
  a reason; never a 5xx. ``Authorization`` headers of any bytes get 401 or 403, never a 5xx.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import assume, given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from feedback_shared.events import FeedbackReceived
from feedback_shared.webhooks import SignatureError, sign, signed_headers, verify
from ingest.config import Settings
from ingest.main import create_app
from tests.unit.fuzz.fuzzing import FUZZ, dumps, hostile_text, json_values, tried
from tests.unit.ingest.fakes import FakePublisher, FakeRepo

SECRETS = ("whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode(), "a plain secret", "é")
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
NOW = 1_700_000_000
TOLERANCE = 300

digits = st.one_of(st.integers(0, 2 * NOW).map(str), st.text("0123456789", min_size=1, max_size=500),
                   st.sampled_from(["²", "٣٤٥", "1e9", "-5", "+5", " 5", "0x10", "1_000", "9" * 5000]))
header_value = st.one_of(hostile_text, digits, st.just(""))


@given(headers=st.dictionaries(st.sampled_from(HEADERS), header_value), body=st.binary(max_size=64),
       secret=st.sampled_from(SECRETS), now=st.floats(0, 4e9))
@FUZZ
def test_verify_refuses_any_headers_with_a_reason(headers: dict[str, str], body: bytes, secret: str,
                                                  now: float) -> None:
    tried("webhooks.verify")
    try:
        msg_id = verify(secret, headers, body, now=now)
    except SignatureError as exc:
        assert str(exc).strip()
    else:  # only a real signature passes
        assert msg_id == headers["webhook-id"]
        assert sign(secret, msg_id, int(headers["webhook-timestamp"]), body) in headers["webhook-signature"].split()


@given(msg_id=st.text(st.characters(codec="utf-8"), min_size=1, max_size=40), body=st.binary(max_size=200),
       secret=st.sampled_from(SECRETS), skew=st.integers(-2 * TOLERANCE, 2 * TOLERANCE),
       header=st.sampled_from(HEADERS), replacement=header_value, other_body=st.binary(max_size=200))
@FUZZ
def test_signatures_round_trip_and_any_change_is_refused(
    msg_id: str, body: bytes, secret: str, skew: int, header: str, replacement: str, other_body: bytes
) -> None:
    tried("webhooks.verify")
    headers = signed_headers(secret, msg_id, body, timestamp=NOW)
    if abs(skew) <= TOLERANCE:
        assert verify(secret, headers, body, now=NOW + skew, tolerance_s=TOLERANCE) == msg_id
    else:
        with pytest.raises(SignatureError, match="tolerance"):
            verify(secret, headers, body, now=NOW + skew, tolerance_s=TOLERANCE)
    if other_body != body:
        with pytest.raises(SignatureError, match="does not match"):
            verify(secret, headers, other_body, now=NOW)
    tampered = {**headers, header: replacement}
    benign = (header == "webhook-signature" and headers[header] in replacement.split()) or (
        header == "webhook-timestamp" and replacement.isascii() and replacement.isdigit() and len(replacement) < 16
        and int(replacement) == NOW) or (header == "webhook-id" and replacement == msg_id)
    if benign:
        assert verify(secret, tampered, body, now=NOW) == replacement if header == "webhook-id" else msg_id
    else:
        with pytest.raises(SignatureError):
            verify(secret, tampered, body, now=NOW)


# ---- the intake route -----------------------------------------------------------------------------
SECRET = SECRETS[0]


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[TestClient, FakePublisher, FakeRepo]]:
    publisher, repo = FakePublisher(), FakeRepo()
    settings = Settings(api_keys=["test-key"], webhook_secrets={"trustpilot": SecretStr(SECRET),
                                                                "reddit": SecretStr(SECRET)})
    app = create_app(settings, CollectorRegistry(), repo=repo, publisher=publisher)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, publisher, repo


#: What an HTTP header can carry: printable Latin-1 (servers decode header bytes as Latin-1).
header_bytes = st.one_of(
    header_value.map(lambda s: s.encode("latin-1", "ignore")),
    st.binary(max_size=80),
).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F).strip())


@given(headers=st.dictionaries(st.sampled_from(HEADERS), header_bytes), body=st.binary(max_size=200),
       tamper=st.booleans())
@FUZZ
def test_webhook_route_refuses_bad_signatures_with_401(
    api: tuple[TestClient, FakePublisher, FakeRepo], headers: dict[str, bytes], body: bytes, tamper: bool
) -> None:
    tried("ingest POST /v1/webhooks (signature)")
    client, publisher, _ = api
    if tamper:  # a valid, fresh signature with some headers replaced, so every check is reached
        signed = {k: v.encode() for k, v in signed_headers(SECRET, "msg-1", body, timestamp=int(time.time())).items()}
        headers = {**signed, **{k: v for k, v in headers.items() if v != signed[k]}}
        assume(headers != signed)
    sent = len(publisher.sent)
    resp = client.post("/v1/webhooks/trustpilot", content=body, headers=headers)
    assert resp.status_code == 401, resp.text
    assert resp.json()["detail"].startswith("webhook signature: ")
    assert len(publisher.sent) == sent


items = st.fixed_dictionaries({}, optional={
    "id": st.one_of(hostile_text, st.integers(), json_values), "review_id": hostile_text, "text": hostile_text,
    "content": hostile_text, "title": st.one_of(hostile_text, json_values), "rating": json_values,
    "stars": json_values, "author": st.one_of(hostile_text, st.dictionaries(st.sampled_from(["name", "handle"]),
                                                                            json_values)),
    "created_at": json_values, "url": json_values, "customer_id": json_values, "lang": json_values,
    "is_public": json_values, "kind": json_values, "type": json_values, "extra": json_values,
})
bodies = st.one_of(
    items.map(lambda i: dumps(i)), st.lists(items, max_size=4).map(lambda i: dumps({"items": i})),
    st.lists(items, max_size=3).map(dumps), st.builds(dumps, json_values), st.binary(max_size=100),
    st.builds(lambda i, a: dumps(i, ascii_only=a), items, st.booleans()),
)


@given(body=bodies, source=st.sampled_from(["trustpilot", "reddit"]))
@FUZZ
def test_signed_webhook_bodies_get_per_item_results_or_422(
    api: tuple[TestClient, FakePublisher, FakeRepo], body: bytes, source: str
) -> None:
    tried("ingest POST /v1/webhooks (body)")
    client, publisher, repo = api
    publisher.sent.clear()
    repo.docs.clear()
    headers = signed_headers(SECRET, "msg-1", body, timestamp=int(time.time()))
    resp = client.post(f"/v1/webhooks/{source}", content=body, headers=headers)
    assert resp.status_code in (200, 422), f"{resp.status_code}: {resp.text[:500]}"
    answer = resp.json()
    if resp.status_code == 422:
        assert answer["detail"]
        assert not publisher.sent
        return
    results = answer["results"]
    assert [r["index"] for r in results] == list(range(len(results)))
    for r in results:
        assert r["status"] in ("accepted", "duplicate", "rejected")
        if r["status"] == "rejected":
            assert r["errors"] and all(e["msg"] for e in r["errors"])
    assert answer["accepted"] == len(publisher.sent)
    raw = json.loads(body)
    raw_items = raw["items"] if isinstance(raw, dict) and "items" in raw else raw
    raw_items = raw_items if isinstance(raw_items, list) else [raw_items]
    for _, event in publisher.sent:
        assert isinstance(event, FeedbackReceived)
        assert event.source == source
        assert event.kind == ("mention" if source == "reddit" else "review")
        # The id is taken from the item, never invented or a Python repr of something else.
        ids = {str(i.get(k)) for i in raw_items for k in ("id", "review_id", "external_id")
               if isinstance(i.get(k), str | int) and not isinstance(i.get(k), bool)}
        assert event.external_id in ids


@given(authorization=st.one_of(header_bytes, header_bytes.map(lambda b: b"Bearer " + b)))
@FUZZ
def test_any_authorization_header_is_401_or_403(api: tuple[TestClient, FakePublisher, FakeRepo],
                                               authorization: bytes) -> None:
    tried("ingest Authorization header")
    assume(authorization.strip() != b"Bearer test-key")
    client, publisher, _ = api
    sent = len(publisher.sent)
    resp = client.post("/v1/reviews", json={"source": "g", "external_id": "1", "text": "hi"},
                       headers={"Authorization": authorization})
    assert resp.status_code in (401, 403), f"{resp.status_code}: {resp.text[:300]}"
    assert resp.json()["detail"]
    assert len(publisher.sent) == sent
