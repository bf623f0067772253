"""Bulk inserts that tolerate what is already there (a redelivery), on any MongoDB-protocol server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


def insert_new(collection: Collection[dict[str, Any]], docs: Sequence[dict[str, Any]]) -> list[int]:
    """Insert ``docs`` in one unordered command; the positions of those inserted. A document whose
    ``_id`` exists already is skipped (it was written before a crash or by another replica); any other
    error is raised."""
    if not docs:
        return []
    try:
        collection.insert_many(list(docs), ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        skipped = {int(e["index"]) for e in errors}
        return [i for i in range(len(docs)) if i not in skipped]
    return list(range(len(docs)))
