"""The insights read model in MongoDB: items for the drill-down, and the aggregates the report reads.

Only what the report and the drill-down read is written. (Versions before this one also kept
``insight_counts`` and ``insight_scores``, finer grains that nothing read; about 8 % of the embedded
database's work while make bench's scored items flowed. Their documents in an older database are left as
they were.)

A batch is written in one transaction: the items not stored yet are inserted, and only theirs are added
to the aggregates, so a redelivered batch (or one replayed after a crash between the write and the offset
commit) counts nothing twice. Another replica writing the same item at the same moment (a rebalance)
makes the insert fail its unique ``_id``, which aborts the transaction; the batch is then decided again
against what is stored.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection as MongoCollection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from alerts.insights import (
    WORST_KEPT,
    InsightItem,
    ItemQuery,
    Period,
    RollupRow,
    increments,
    item_doc,
    item_from_doc,
    rollup_rows,
)
from feedback_shared.mongo import chunks

Doc = dict[str, Any]


def contiguous(days: Sequence[date]) -> list[tuple[date, date]]:
    """Sorted days as runs of consecutive days: (first, last) each."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and day - runs[-1][1] == timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


ATTEMPTS = 3


class MongoInsights:
    def __init__(self, db: Database[Doc]) -> None:
        self.client = db.client
        self.items: MongoCollection[Doc] = db["insight_items"]
        self.rollups: MongoCollection[Doc] = db["insight_rollups"]
        self.weekly: MongoCollection[Doc] = db["insight_rollups_weekly"]

    def ensure_indexes(self) -> None:
        # Few indexes on the items: each costs every insert (SecantusDB: a multikey index on the needs
        # tripled it). The drill-down walks the day index newest first until it has its page.
        self.items.create_index([("day", DESCENDING)])
        self.items.create_index([("customer_id", ASCENDING)])
        self.rollups.create_index([("dimension", ASCENDING), ("day", ASCENDING)])
        self.weekly.create_index([("dimension", ASCENDING), ("day", ASCENDING)])

    def record(self, items: Sequence[InsightItem]) -> int:
        """Store the items not stored yet and add them to the aggregates, in one transaction; how many were new."""
        docs = list({d["_id"]: d for d in map(item_doc, items)}.values())
        if not docs:
            return 0
        by_id = {i.item_id: i for i in items}

        def write(session: ClientSession) -> int:
            ids = [d["_id"] for d in docs]
            stored = {d["_id"] for chunk in chunks(ids)
                      for d in self.items.find({"_id": {"$in": chunk}}, {"_id": 1},
                                               session=session)}
            new = [d for d in docs if d["_id"] not in stored]
            if not new:
                return 0
            self.items.insert_many(new, ordered=True, session=session)
            inc = increments(by_id[d["_id"]] for d in new)
            rollups = [UpdateOne({"_id": "|".join(key)}, self._rollup_update(key, counters, inc.worst.get(key, [])),
                                 upsert=True) for key, counters in inc.rollups.items() if counters]
            weekly = [UpdateOne({"_id": "|".join(key)}, self._rollup_update(key, counters, inc.weekly_worst.get(key, [])),
                                upsert=True) for key, counters in inc.weekly.items() if counters]
            for collection, ops in ((self.rollups, rollups), (self.weekly, weekly)):
                if ops:
                    collection.bulk_write(ops, ordered=False, session=session)
            return len(new)

        for attempt in range(ATTEMPTS):
            try:
                with self.client.start_session() as session:
                    written: int = session.with_transaction(write)
                    return written
            except (DuplicateKeyError, BulkWriteError):
                # Written meanwhile by another replica: decide again against what is stored now.
                if attempt == ATTEMPTS - 1:
                    raise
        return 0  # pragma: no cover (the loop returns or raises)

    @staticmethod
    def _rollup_update(key: tuple[str, str, str], counters: dict[str, float],
                       worst: list[tuple[str, float]]) -> Doc:
        update: Doc = {"$inc": counters, "$setOnInsert": dict(zip(("day", "dimension", "value"), key, strict=True))}
        if worst:  # the day's most negative items for this value, lowest score first, a few kept
            update["$push"] = {"worst": {"$each": [{"id": i, "score": s} for i, s in worst],
                                         "$sort": {"score": 1}, "$slice": WORST_KEPT}}
        return update

    def rollup(self, period: Period, dimensions: Collection[str]) -> list[RollupRow]:
        """The weekly rollups of the weeks wholly inside ``period`` and the daily ones of the days at its
        edges (each row's ``day`` is its first day)."""
        full_weeks, loose_days = period.plan()
        reads = [(self.weekly, full_weeks[0], full_weeks[-1])] if full_weeks else []
        reads += [(self.rollups, first, last) for first, last in contiguous(loose_days)]
        # One query per dimension and run of days: SecantusDB walks the (dimension, day) index for an
        # equality and a range, but scans the collection for a $in on the dimension (10 ms against 75).
        return [row for collection, first, last in reads for dimension in dimensions
                for row in rollup_rows(collection.find(
                    {"dimension": dimension, "day": {"$gte": first.isoformat(), "$lte": last.isoformat()}},
                    {"_id": 0}))]

    def by_ids(self, ids: Sequence[str]) -> dict[str, InsightItem]:
        return {d["_id"]: item_from_doc(d) for chunk in chunks(ids)
                for d in self.items.find({"_id": {"$in": chunk}})}

    def find(self, query: ItemQuery) -> list[InsightItem]:
        """Newest first: one day at a time from the period's last, until the page is full. SecantusDB
        answers an equality on the day index at once, but fetches a whole range before a limit (8 weeks of
        50,000 items: seconds)."""
        flt: Doc = {}
        for name in ("language", "source", "touch_point"):
            if (value := getattr(query, name)) is not None:
                flt[name] = value
        if query.need is not None and query.sentiment is not None:
            flt["need_sentiments"] = f"{query.need}:{query.sentiment}"
        elif query.need is not None:
            flt["need_names"] = query.need
        elif query.sentiment is not None:
            flt["sentiment"] = query.sentiment
        found: list[InsightItem] = []
        day = query.period.end
        while day >= query.period.start and len(found) < query.limit:
            found += [item_from_doc(d) for d in self.items.find({**flt, "day": day.isoformat()}).sort("_id", ASCENDING)
                      .limit(query.limit - len(found))]
            day -= timedelta(days=1)
        return found

    def erase_customer(self, customer_id: str) -> int:
        """Blank the customer's id and the excerpts of their items; the counts stay (they name no one)."""
        result = self.items.update_many({"customer_id": customer_id}, {"$set": {"customer_id": None, "excerpt": ""}})
        return int(result.modified_count)
