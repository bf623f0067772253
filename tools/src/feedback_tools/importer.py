"""``feedbackctl import FILE``: a JSONL or CSV file of feedback into the ingest batch API.

Rows may be in the API's own shape (``{"type": "review", "source": …, "external_id": …, "text": …}``)
or any common export shape (``id``, ``content``, ``stars``, ``created_at`` …: see ``adapters.py``).
Items the broker could not take are retried, honouring ``Retry-After``; rejected rows go to a file
beside the input with the reason, so they can be fixed and imported again.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from feedback_shared.adapters import generic_item

COMMERCE_TYPES = ("purchase", "return")


@dataclass
class ImportSummary:
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    unavailable: int = 0
    rejected_file: str | None = None
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": self.rejected, "unavailable": self.unavailable, "rejected_file": self.rejected_file}


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row) for each row; a row that is not an object comes back as an error string."""
    # Undecodable bytes come through as lone surrogates (surrogateescape), so one bad row is refused, not the file.
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
            reader = csv.DictReader(fh)
            for number in itertools.count(2):
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:  # e.g. a field over the csv module's size limit
                    yield number, f"row {number} is not valid CSV: {exc}"
                    continue
                if not _is_utf8(*(k or "" for k in row), *(v for v in row.values() if isinstance(v, str))):
                    yield number, f"row {number} is not UTF-8 text"
                    continue
                yield number, {k: v for k, v in row.items() if k and v not in (None, "")}
        return
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            if not _is_utf8(line):
                yield number, f"line {number} is not UTF-8 text"
                continue
            try:
                row = json.loads(line, parse_constant=_not_json)
            except ValueError as exc:  # JSONDecodeError, NaN, or an integer longer than Python converts
                yield number, f"line {number} is not JSON: {getattr(exc, 'msg', exc)}"
                continue
            if not isinstance(row, dict):
                yield number, f"line {number} is not a JSON object"
            elif not _is_utf8(json.dumps(row, ensure_ascii=False)):
                yield number, f"line {number} holds a lone surrogate escape (\\ud800-\\udfff), not text"
            else:
                yield number, row


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def _is_utf8(*texts: str) -> bool:
    try:
        for text in texts:
            text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_item(row: dict[str, Any], *, source: str | None, kind: str) -> dict[str, Any]:
    if row.get("type") in COMMERCE_TYPES:
        return dict(row)
    item = generic_item(row, default_kind=kind)
    if "source" in row:
        item["source"] = row["source"]
    elif source:
        item["source"] = source
    questions = item.get("questions")
    if isinstance(questions, str) and questions.lstrip().startswith("{"):
        # A CSV cell holds a survey's other answers as a JSON object.
        try:
            item["questions"] = json.loads(questions)
        except ValueError:
            pass  # left as text, for validation to refuse with the field named
    return item


def import_file(
    path: Path, *, ingest_url: str, api_key: str, source: str | None = None, kind: str = "review",
    chunk_size: int = 500, max_retries: int = 10, progress: bool = True,
) -> ImportSummary:
    summary = ImportSummary()
    rejected_path = path.with_name(path.name + ".rejected.jsonl")
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=ingest_url, headers=headers, timeout=120) as client, \
            rejected_path.open("w", encoding="utf-8", errors="backslashreplace") as rejected_out, \
            tqdm(desc=f"importing {path.name}", unit="row", disable=not progress) as bar:

        def reject(number: int, row: Any, errors: Any) -> None:
            summary.rejected += 1
            rejected_out.write(json.dumps({"line": number, "errors": errors, "row": row}, ensure_ascii=False,
                                          default=str) + "\n")

        def send(batch: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> None:
            pending = batch
            for attempt in range(max_retries + 1):
                resp = client.post("/v1/batch", json={"items": [item for _, _, item in pending]})
                if resp.status_code not in (200, 503):
                    raise RuntimeError(f"ingest answered {resp.status_code}: {resp.text[:300]}")
                retry: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
                for (number, row, item), result in zip(pending, resp.json()["results"], strict=True):
                    status = result["status"]
                    if status == "accepted":
                        summary.accepted += 1
                    elif status == "duplicate":
                        summary.duplicates += 1
                    elif status == "rejected":
                        reject(number, row, result.get("errors"))
                    else:
                        retry.append((number, row, item))
                bar.update(len(pending) - len(retry))
                if not retry:
                    return
                pending = retry
                if attempt < max_retries:
                    time.sleep(float(resp.headers.get("Retry-After", "2")))
            summary.unavailable += len(pending)
            summary.errors.append(f"{len(pending)} rows not accepted after {max_retries} retries (broker down?)")

        chunk: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        for number, row in read_rows(path):
            summary.rows += 1
            if isinstance(row, str):
                reject(number, None, [{"msg": row}])
                bar.update(1)
                continue
            chunk.append((number, row, to_item(row, source=source, kind=kind)))
            if len(chunk) >= chunk_size:
                send(chunk)
                chunk = []
        if chunk:
            send(chunk)
    if summary.rejected:
        summary.rejected_file = str(rejected_path)
    else:
        rejected_path.unlink()
    return summary
