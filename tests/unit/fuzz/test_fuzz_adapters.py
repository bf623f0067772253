"""Fuzzing the generic JSON adapter, the file importer (JSONL and CSV) and the ingest request bodies.

Properties:
- ``generic_item`` maps any JSON object without raising, and every id, author or text it returns is a
  value from the input (an integer id as its digits), never a Python repr of a list, dict or bool;
- ``read_rows`` reads any file (any bytes, invalid UTF-8, huge fields, numbers JSON cannot hold)
  without raising: one row per non-blank line, a dict or an error naming the line;
- ``import_file`` (against the ingest app, fakes behind it) accounts for every row as accepted,
  duplicate, rejected (written to the rejected file with the errors) or unavailable; it never raises;
- each ingest route answers any JSON body with 202/200 or 422 with the errors, never a 5xx, and an
  accepted item is published with the values sent.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from feedback_shared.adapters import ALIASES, generic_item
from feedback_shared.events import FeedbackReceived, OrderReturned, PurchaseRecorded
from feedback_tools import importer
from ingest.config import Settings
from ingest.main import create_app
from ingest.service import normalise_text
from tests.unit.fuzz.fuzzing import FUZZ, dumps, hostile_numbers, hostile_text, json_values, tried
from tests.unit.ingest.fakes import FakePublisher, FakeRepo

ALIAS_NAMES = sorted({name for names in ALIASES.values() for name in names} | {"kind", "type", "is_public",
                                                                                  "source"})
#: Objects in the shapes the adapter knows, with hostile values.
raw_items = st.dictionaries(
    st.one_of(st.sampled_from(ALIAS_NAMES), hostile_text),
    st.one_of(hostile_text, hostile_numbers, json_values,
              st.dictionaries(st.sampled_from(["name", "handle"]), json_values, max_size=2)),
    max_size=8,
)


def _candidates(item: dict[str, Any]) -> set[str]:
    """Strings the adapter may legitimately return: input strings, and integer ids as their digits."""
    values = list(item.values()) + [v for m in item.values() if isinstance(m, dict) for v in m.values()]
    return {v for v in values if isinstance(v, str)} | {
        str(v) for v in values if isinstance(v, int) and not isinstance(v, bool)}


@given(item=raw_items, default_kind=st.sampled_from(["review", "mention"]))
@FUZZ
def test_generic_adapter_maps_any_object_to_input_values(item: dict[str, Any], default_kind: str) -> None:
    tried("adapters.generic_item")
    fields = generic_item(item, default_kind=default_kind)
    assert isinstance(fields["type"], str)
    assert set(fields) <= {"type", "is_public", *ALIASES}
    strings = _candidates(item)
    for name in ("external_id", "author", "customer_id"):
        if isinstance(fields.get(name), str):
            assert fields[name] in strings, f"{name}={fields[name]!r} is not a value from the input"
    text = fields.get("text")
    if isinstance(text, str):
        assert text in strings or any(text == f"{a}\n{b}" for a in strings for b in strings), text[:100]


# ---- the ingest app, behind fakes -----------------------------------------------------------------
@pytest.fixture(scope="module")
def api() -> Iterator[tuple[TestClient, FakePublisher, FakeRepo]]:
    publisher, repo = FakePublisher(), FakeRepo()
    app = create_app(Settings(api_keys=["test-key"]), CollectorRegistry(), repo=repo, publisher=publisher)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, publisher, repo


AUTH = {"Authorization": "Bearer test-key", "Content-Type": "application/json"}
ROUTES = {
    "/v1/reviews": ("source", "external_id", "text", "rating", "customer_id", "author", "language", "url",
                    "occurred_at", "is_public", "channel"),
    "/v1/mentions": ("source", "external_id", "text", "author", "url", "thread_id", "occurred_at"),
    "/v1/feedback": ("text", "customer_id", "email", "phone", "external_id", "order_id", "occurred_at"),
    "/v1/purchases": ("order_id", "customer_id", "amount", "currency", "items", "occurred_at"),
    "/v1/returns": ("order_id", "customer_id", "amount", "currency", "items", "occurred_at"),
}
GOOD = {"source": "google", "external_id": "e-1", "text": "cold soup", "order_id": "o-1", "customer_id": "c-1",
        "amount": "12.50", "currency": "EUR", "email": "a@example.com"}
EDGE = st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "\ud800", "NaN", "1e999",
                        float("nan"), float("inf"), 10**30, "12.34567", "-1", "eur", [{"sku": "\ud800"}],
                        [{"sku": "a", "price": float("nan")}], [{"sku": "a", "quantity": 0}]])


@st.composite
def request_bodies(draw: st.DrawFn, route: str) -> dict[str, Any]:
    body = {k: v for k, v in GOOD.items() if k in ROUTES[route]}
    for field in draw(st.lists(st.sampled_from(ROUTES[route]), max_size=3)):
        body[field] = draw(st.one_of(EDGE, json_values))
    return body


@given(data=st.data(), route=st.sampled_from(sorted(ROUTES)))
@FUZZ
def test_ingest_routes_answer_any_json_with_2xx_or_422(api: tuple[TestClient, FakePublisher, FakeRepo],
                                                       data: st.DataObject, route: str) -> None:
    tried("ingest request bodies")
    client, publisher, repo = api
    publisher.sent.clear()
    repo.docs.clear()
    body = data.draw(request_bodies(route), label="body")
    raw = dumps(body, ascii_only=data.draw(st.booleans(), label="ascii"))
    resp = client.post(route, content=raw, headers=AUTH)
    assert resp.status_code in (200, 202, 422), f"{resp.status_code}: {resp.text[:300]}"
    if resp.status_code == 422:
        assert resp.json()["detail"], "a refusal names the problem"
        assert not publisher.sent
        return
    [(_, event)] = publisher.sent
    if isinstance(event, PurchaseRecorded | OrderReturned):
        assert (event.order_id, event.customer_id) == (body["order_id"], body["customer_id"])
    else:
        assert isinstance(event, FeedbackReceived)
        assert event.text == normalise_text(body["text"])[0]
        if route != "/v1/feedback":
            assert (event.source, event.external_id) == (body["source"], body["external_id"])


# ---- the file importer ----------------------------------------------------------------------------
def _csv_text(rows: list[dict[str, Any]], header: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: str(v) for k, v in row.items()} for row in rows)
    return out.getvalue()


jsonl_lines = st.one_of(
    raw_items.map(dumps), raw_items.map(lambda i: dumps(i, ascii_only=False)), st.builds(dumps, json_values),
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")), st.just(b""), st.just(b"1" * 5000),
    st.just(b"NaN"), st.just(b"\xef\xbb\xbf{}"),
)


@st.composite
def files(draw: st.DrawFn) -> tuple[str, bytes]:
    if draw(st.booleans(), label="csv"):
        header = draw(st.lists(st.sampled_from(ALIAS_NAMES), min_size=1, max_size=6, unique=True))
        rows = draw(st.lists(st.dictionaries(st.sampled_from(header), hostile_text), max_size=5))
        raw = _csv_text(rows, header).encode("utf-8", "surrogatepass")
        if draw(st.booleans(), label="corrupt"):
            at = draw(st.integers(0, len(raw)))
            raw = raw[:at] + draw(st.sampled_from([b"\xff", b'"', b"\x00", b"a" * 140_000, b"\r"])) + raw[at:]
        return ".csv", raw
    return ".jsonl", b"\n".join(draw(st.lists(jsonl_lines, max_size=6)))


@given(file=files())
@FUZZ
def test_read_rows_reads_any_file_row_by_row(file: tuple[str, bytes]) -> None:
    tried("importer.read_rows")
    suffix, raw = file
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"in{suffix}"
        path.write_bytes(raw)
        rows = list(importer.read_rows(path))
    numbers = [n for n, _ in rows]
    assert numbers == sorted(set(numbers)), "one row per line, in order"
    for number, row in rows:
        if isinstance(row, str):
            assert row.startswith((f"line {number} ", f"row {number} ")), row
        else:
            assert isinstance(row, dict)
            if suffix == ".csv":
                assert all(isinstance(k, str) and isinstance(v, str) for k, v in row.items())
                assert all(s.encode("utf-8") for kv in row.items() for s in kv)
    if suffix == ".jsonl":
        lines = [line for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
        assert len(rows) <= len(lines) + raw.count(b"\r")


@given(file=files(), kind=st.sampled_from(["review", "mention"]))
@FUZZ
def test_import_file_accounts_for_every_row(api: tuple[TestClient, FakePublisher, FakeRepo],
                                           file: tuple[str, bytes], kind: str) -> None:
    tried("importer.import_file")
    client, publisher, repo = api
    publisher.sent.clear()
    repo.docs.clear()
    fake_httpx = SimpleNamespace(Client=lambda base_url, headers, **_: TestClient(
        client.app, base_url=base_url, headers=headers, raise_server_exceptions=False))
    suffix, raw = file
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(importer, "httpx", fake_httpx):
        path = Path(tmp) / f"in{suffix}"
        path.write_bytes(raw)
        summary = importer.import_file(path, ingest_url="http://ingest", api_key="test-key", source="shop",
                                       kind=kind, progress=False)
        assert summary.accepted + summary.duplicates + summary.rejected + summary.unavailable == summary.rows
        assert summary.accepted == len(publisher.sent)
        if summary.rejected:
            assert summary.rejected_file
            rejected = [json.loads(line) for line in Path(summary.rejected_file).read_text("utf-8").split("\n") if line]
            assert len(rejected) == summary.rejected
            assert all(r["errors"] for r in rejected), "every rejected row says why"
