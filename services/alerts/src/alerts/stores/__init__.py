"""Alerts' MongoDB stores, one per aggregate, and ``AlertsStore`` holding them for one database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.database import Database

from alerts.ports import (
    ActivityStore,
    CaseStore,
    Directory,
    InsightsStore,
    Outbox,
    ScheduledContacts,
    SpikeCounter,
    Timeline,
)
from alerts.stores.activity import MongoActivity
from alerts.stores.cases import MongoCaseStore
from alerts.stores.directory import MongoDirectory
from alerts.stores.insights import MongoInsights
from alerts.stores.outbox import MongoOutbox
from alerts.stores.scheduled import MongoScheduledContacts
from alerts.stores.spikes import MongoSpikeCounter
from alerts.stores.timeline import MongoTimeline


@dataclass
class AlertsStore:
    cases: CaseStore
    outbox: Outbox
    directory: Directory
    spikes: SpikeCounter
    scheduled: ScheduledContacts
    timeline: Timeline
    activity: ActivityStore
    insights: InsightsStore

    @classmethod
    def mongo(cls, db: Database[dict[str, Any]]) -> AlertsStore:
        return cls(MongoCaseStore(db), MongoOutbox(db), MongoDirectory(db), MongoSpikeCounter(db),
                   MongoScheduledContacts(db), MongoTimeline(db), MongoActivity(db), MongoInsights(db))

    def ensure_indexes(self) -> None:
        for store in (self.cases, self.outbox, self.directory, self.spikes, self.scheduled, self.timeline,
                      self.activity, self.insights):
            ensure = getattr(store, "ensure_indexes", None)
            if ensure is not None:
                ensure()

    def erase_customer(self, customer_id: str, now: datetime, requested_at: datetime) -> dict[str, int]:
        """Delete the account and every text the customer wrote; keep the cases' counts and clocks.

        What stays: priority, status, needs, item count and timestamps (what dashboards count). The
        account is replaced by a mark holding only ``erased_at`` (``requested_at``: when ingest took the
        request), so items from before it still in flight on ``feedback.scored.v1`` are dropped when
        they arrive (``decide``) instead of opening a case with the text again.
        """
        account = self.directory.erase_customer(customer_id, requested_at)
        case_ids = self.cases.erase_customer(customer_id, now)
        self.outbox.erase_cases(case_ids)
        self.outbox.erase_customer(customer_id, now)
        self.scheduled.erase_customer(customer_id)  # a delay notice or follow-up would quote the account
        self.timeline.erase_customer(customer_id)
        self.activity.erase_customer(customer_id)
        insight_items = self.insights.erase_customer(customer_id)  # the counts stay; they name no one
        return {"accounts": account, "cases": len(case_ids), "insight_items": insight_items}
