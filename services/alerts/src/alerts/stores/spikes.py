"""Negative public items per minute (``public_negatives``, ``spike_minutes``): the crisis window."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

from alerts.stores._bulk import insert_new

Doc = dict[str, Any]


class MongoSpikeCounter:
    def __init__(self, db: Database[Doc]) -> None:
        self.public_negatives: Collection[Doc] = db["public_negatives"]
        self.spike_minutes: Collection[Doc] = db["spike_minutes"]

    def ensure_indexes(self) -> None:
        self.public_negatives.create_index([("at", ASCENDING)])

    def record(self, feedback_event_ids: Sequence[str], at: datetime) -> None:
        """Count each negative public item once in its minute (two commands for a whole batch).

        Only the call that records an item adds it to its minute, so a redelivery never counts twice (a
        crash between the two writes undercounts those items)."""
        minute = int(at.timestamp() // 60)
        docs = [{"_id": event_id, "at": at, "minute": minute} for event_id in dict.fromkeys(feedback_event_ids)]
        added = Counter(docs[i]["minute"] for i in insert_new(self.public_negatives, docs))
        if added:
            self.spike_minutes.bulk_write([UpdateOne({"_id": m}, {"$inc": {"count": n}}, upsert=True)
                                           for m, n in added.items()], ordered=False)

    def count(self, at: datetime, window: timedelta) -> int:
        """Negative public items in the window up to ``at``, exact to the minute: one read of a few small
        documents. (Counting the items themselves read every item in the window for every new one: 26 ms
        per item with 1,000 in the window on the embedded database.)"""
        minute = int(at.timestamp() // 60)
        first = int((at - window).timestamp() // 60) + 1
        return sum(int(d["count"]) for d in self.spike_minutes.find({"_id": {"$in": list(range(first, minute + 1))}}))
