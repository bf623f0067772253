"""In-memory stores behind alerts' Protocols (``alerts.ports``), with the same rules as MongoDB's: ids
are unique, an item is linked to one case, a page is enqueued once. Each counts its calls, as the
database counts round trips."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from alerts.customer_contact import ScheduledContact
from alerts.decide import CaseUpdate
from alerts.domain import Account, Case, Csm, Delivery
from alerts.insights import WORST_KEPT, InsightItem, ItemQuery, Period, RollupRow, increments
from alerts.silence import Activity, is_silent, moves_forward
from alerts.stores import AlertsStore


class Calls:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def _call(self, name: str) -> None:
        self.calls[name] += 1


class FakeCases(Calls):
    def __init__(self) -> None:
        super().__init__()
        self.cases: dict[str, Case] = {}
        self.links: dict[str, str] = {}

    def cases_of_events(self, feedback_event_ids: Sequence[str]) -> dict[str, Case]:
        self._call("cases_of_events")
        return {e: self.cases[self.links[e]] for e in feedback_event_ids if self.links.get(e) in self.cases}

    def customer_cases(self, customer_ids: Iterable[str]) -> dict[str, list[Case]]:
        self._call("customer_cases")
        return {c: [case for case in self.cases.values() if case.customer_id == c] for c in customer_ids}

    def open_thread_cases(self, thread_ids: Iterable[str]) -> dict[str, Case]:
        self._call("open_thread_cases")
        out: dict[str, Case] = {}
        for case in sorted(self.cases.values(), key=lambda c: c.created_at):
            if case.thread_id in set(thread_ids) and case.is_open and case.kind == "case":
                out[case.thread_id] = case
        return out

    def link(self, links: Sequence[tuple[str, str]]) -> set[str]:
        self._call("link")
        new = {event_id for event_id, _ in links if event_id not in self.links}
        for event_id, alert_id in links:
            self.links.setdefault(event_id, alert_id)
        return new

    def insert(self, cases: Sequence[Case]) -> set[str]:
        self._call("insert")
        new = {c.id for c in cases if c.id not in self.cases}
        for case in cases:
            self.cases.setdefault(case.id, case)
        return new

    def add_items(self, updates: Sequence[CaseUpdate]) -> int:
        self._call("add_items")
        added = 0
        for u in updates:
            case = self.cases.get(u.alert_id)
            if case is not None and u.feedback_event_id not in case.feedback_event_ids:
                self.cases[u.alert_id] = case.model_copy(update={
                    "feedback_event_ids": [*case.feedback_event_ids, u.feedback_event_id],
                    "event_count": case.event_count + 1, "latest": u.latest, "updated_at": u.at})
                added += 1
        return added

    def get(self, alert_id: str) -> Case | None:
        return self.cases.get(alert_id)

    def find(self, *, status: str | None, csm: str | None, need: str | None, limit: int,
             within: Collection[str] | None = None) -> list[Case]:
        found = [c for c in self.cases.values() if (not status or c.status == status)
                 and (not csm or c.csm_id == csm) and (not need or need in c.needs)
                 and (within is None or c.csm_id in within)]
        return sorted(found, key=lambda c: c.created_at, reverse=True)[:limit]

    def transition(self, alert_id: str, from_statuses: tuple[str, ...], to: str, now: datetime) -> Case | None:
        case = self.cases.get(alert_id)
        if case is None or case.status not in from_statuses:
            return None
        self.cases[alert_id] = case.model_copy(update={"status": to, f"{to}_at": now, "updated_at": now})
        return self.cases[alert_id]

    def add_reply(self, alert_id: str, reply: dict[str, Any], now: datetime) -> Case | None:
        case = self.cases.get(alert_id)
        if case is None:
            return None
        replies = list(getattr(case, "replies", None) or [])
        update: dict[str, Any] = {"updated_at": now}
        if all(r["reply_id"] != reply["reply_id"] for r in replies):
            update["replies"] = [*replies, reply]
        if case.status in ("open", "acknowledged"):
            update.update(status="responded", responded_at=now)
        self.cases[alert_id] = case.model_copy(update=update)
        return self.cases[alert_id]

    def act(self, alert_id: str, fields: dict[str, Any], entry: dict[str, Any], now: datetime,
            from_statuses: tuple[str, ...] | None = None, *, once_per_item: str | None = None) -> Case | None:
        case = self.cases.get(alert_id)
        if case is None or (from_statuses is not None and case.status not in from_statuses):
            return None
        if once_per_item is not None and any(e.get("feedback_event_id") == once_per_item for e in case.history):
            return None
        self.cases[alert_id] = case.model_copy(update={**fields, "updated_at": now,
                                                       "history": [*case.history, entry]})
        return self.cases[alert_id]

    def by_references(self, references: Iterable[str]) -> list[Case]:
        self._call("by_references")
        refs = tuple(references)
        return [c for c in self.cases.values() if c.kind == "case" and c.id.startswith(refs)] if refs else []

    def customer_history(self, customer_id: str, limit: int = 20) -> list[Case]:
        mine = [c for c in self.cases.values() if c.customer_id == customer_id]
        return sorted(mine, key=lambda c: c.created_at, reverse=True)[:limit]

    def waiting_cases(self, customer_ids: Iterable[str]) -> list[Case]:
        self._call("waiting_cases")
        wanted = set(customer_ids)
        return [c for c in self.cases.values() if c.customer_id in wanted and c.status == "waiting_on_customer"]

    def resume(self, resumed: Sequence[tuple[str, dict[str, Any]]], now: datetime) -> int:
        done = 0
        for alert_id, fields in resumed:
            case = self.cases.get(alert_id)
            if case is not None and case.status == "waiting_on_customer":
                self.cases[alert_id] = case.model_copy(update={
                    **fields, "updated_at": now, "waiting_since": None, "status_before_waiting": None,
                    "history": [*case.history, {"action": "customer_wrote", "by": None, "at": now}]})
                done += 1
        return done

    def unresolved_due(self, now: datetime, limit: int = 200) -> list[Case]:
        return [c for c in self.cases.values() if c.is_open and (
            (c.internal_target and c.internal_target <= now and c.escalated_at is None)
            or (c.promised_by and c.promised_by <= now and c.breached_at is None))][:limit]

    def mark_once(self, alert_id: str, field: str, now: datetime) -> Case | None:
        case = self.cases.get(alert_id)
        if case is None or getattr(case, field, None) is not None:
            return None
        self.cases[alert_id] = case.model_copy(update={field: now, "updated_at": now})
        return self.cases[alert_id]

    def erase_customer(self, customer_id: str, now: datetime) -> list[str]:
        ids = [c.id for c in self.cases.values() if c.customer_id == customer_id]
        for i in ids:
            self.cases[i] = self.cases[i].model_copy(update={"customer_id": None, "erased_at": now, "latest": None,
                                                             "first": None, "trace_id": None, "thread_id": None,
                                                             "replies": None})
        crises = [c.id for c in self.cases.values()
                  if c.kind == "crisis" and c.latest is not None and getattr(c.latest, "customer_id", None) == customer_id]
        for i in crises:
            latest = self.cases[i].latest
            assert latest is not None
            self.cases[i] = self.cases[i].model_copy(update={"latest": latest.model_copy(update={
                "text": "[excerpt erased at a customer's request]", "customer_id": None})})
        return ids + crises


class FakeOutbox(Calls):
    def __init__(self) -> None:
        super().__init__()
        self.deliveries: dict[str, dict[str, Any]] = {}

    def enqueue(self, deliveries: Sequence[Delivery], now: datetime, *,
                claim_for: timedelta | None = None) -> list[dict[str, Any]]:
        self._call("enqueue")
        added = []
        for d in deliveries:
            if d.delivery_id in self.deliveries:
                continue
            doc = {"_id": d.delivery_id, **d.to_doc(), "status": "pending", "attempts": 0, "next_attempt_at": now}
            if claim_for is not None:
                doc.update(status="sending", attempts=1, lease_until=now + claim_for)
            self.deliveries[d.delivery_id] = doc
            added.append(dict(doc))
        return added

    def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[dict[str, Any]]:
        self._call("claim_due")
        due = [d for d in self.deliveries.values() if (d["status"] == "pending" and d["next_attempt_at"] <= now)
               or (d["status"] == "sending" and d["lease_until"] <= now)][:limit]
        for d in due:
            d.update(resumed=d["status"] == "sending", status="sending", lease_until=now + lease,
                     attempts=d["attempts"] + 1)
        return [dict(d) for d in due]

    def renew_leases(self, held: Sequence[tuple[str, datetime, int]], new_until: datetime) -> set[str]:
        self._call("renew_leases")
        renewed = set()
        for delivery_id, lease_until, attempts in held:
            d = self.deliveries.get(delivery_id)
            if (d is not None and d["status"] == "sending" and d.get("lease_until") == lease_until
                    and d["attempts"] == attempts):
                d["lease_until"] = new_until
                renewed.add(delivery_id)
        return renewed

    def release(self, delivery_id: str, lease_until: datetime, now: datetime) -> bool:
        d = self.deliveries.get(delivery_id)
        if d is None or d["status"] != "sending" or d.get("lease_until") != lease_until:
            return False
        d.update(status="pending", next_attempt_at=now, attempts=d["attempts"] - 1)
        return True

    def mark_sent(self, delivery_ids: Sequence[str], now: datetime) -> None:
        self._call("mark_sent")
        for i in delivery_ids:
            self.deliveries[i].update(status="sent", sent_at=now)

    def mark_failed(self, delivery_id: str, *, dead: bool, next_attempt_at: datetime, error: str) -> None:
        self.deliveries[delivery_id].update(status="dead" if dead else "pending", next_attempt_at=next_attempt_at,
                                            last_error=error)

    def deliveries_for(self, alert_id: str) -> list[dict[str, Any]]:
        return [dict(d) for d in self.deliveries.values() if d["alert_id"] == alert_id]

    def dead(self, limit: int) -> list[dict[str, Any]]:
        return [dict(d) for d in self.deliveries.values() if d["status"] == "dead"][:limit]

    def requeue(self, delivery_ids: Sequence[str] | None, now: datetime) -> int:
        requeued = 0
        for i, d in self.deliveries.items():
            if d["status"] == "dead" and (delivery_ids is None or i in delivery_ids):
                d.update(status="pending", attempts=0, next_attempt_at=now, requeued_at=now)
                requeued += 1
        return requeued

    def erase_customer(self, customer_id: str, now: datetime) -> int:
        erased = 0
        for d in self.deliveries.values():
            if d.get("customer_id") == customer_id:
                if d["status"] in ("pending", "sending"):
                    d.update(status="dead", last_error="erased at the customer's request")
                d.update(title="[erased]", body="[erased at the customer's request]", payload="{}", url="erased://")
                d.pop("customer_id")
                erased += 1
        return erased

    def erase_cases(self, case_ids: Sequence[str]) -> None:
        for d in self.deliveries.values():
            if d["alert_id"] in case_ids:
                d.update(title="[erased]", body="[erased at the customer's request]", payload="{}")


class FakeDirectory(Calls):
    def __init__(self) -> None:
        super().__init__()
        self.csms: dict[str, Csm] = {}
        self.accounts: dict[str, Account] = {}

    def put_csm(self, csm_id: str, doc: dict[str, Any]) -> None:
        self.csms[csm_id] = Csm(csm_id, tuple(doc.get("notify", [])))

    def csms_by_id(self, csm_ids: Iterable[str]) -> dict[str, Csm]:
        self._call("csms_by_id")
        return {i: self.csms[i] for i in csm_ids if i in self.csms}

    def put_account(self, customer_id: str, doc: dict[str, Any]) -> None:
        kept = self.accounts.get(customer_id, Account(customer_id))
        fields = {k: doc.get(k) for k in ("csm_id", "tier", "preferred_name", "preferred_channel", "language",
                                          "email", "time_zone")}
        consent = doc.get("consent") or {}
        self.accounts[customer_id] = replace(kept, **fields, first_name_permitted=bool(consent.get("first_name")),
                                             marketing_consent=bool(consent.get("marketing")))

    def accounts_by_id(self, customer_ids: Iterable[str]) -> dict[str, Account]:
        self._call("accounts_by_id")
        return {c: self.accounts[c] for c in customer_ids if c in self.accounts}

    def account(self, customer_id: str | None) -> Account | None:
        return self.accounts.get(customer_id) if customer_id else None

    def set_tier(self, customer_id: str, tier: str, caused_at: datetime | None = None) -> bool:
        account = self.accounts.get(customer_id, Account(customer_id))
        if caused_at is not None and account.erased_at is not None and caused_at <= account.erased_at:
            return False
        self.accounts[customer_id] = replace(account, tier=account.tier or tier)
        return True

    def erase_customer(self, customer_id: str, requested_at: datetime) -> int:
        had = customer_id in self.accounts
        self.accounts[customer_id] = Account(customer_id, erased_at=requested_at)
        return int(had)


class FakeSpikes(Calls):
    def __init__(self) -> None:
        super().__init__()
        self.items: list[datetime] = []

    def add(self, items: int, at: datetime) -> None:
        self._call("add")
        self.items += [at] * items

    def count(self, at: datetime, window: timedelta) -> int:
        self._call("count")
        return sum(1 for t in self.items if at - window < t <= at)


class FakeScheduled(Calls):
    def __init__(self) -> None:
        super().__init__()
        self.contacts: dict[str, ScheduledContact] = {}
        self.settled: dict[str, str] = {}

    def schedule(self, contacts: Sequence[ScheduledContact]) -> int:
        self._call("schedule")
        new = [c for c in contacts if c.contact_id not in self.contacts]
        for c in new:
            self.contacts[c.contact_id] = c
        return len({c.contact_id for c in new})

    def due(self, now: datetime, limit: int) -> list[ScheduledContact]:
        due = [c for c in self.contacts.values() if c.contact_id not in self.settled and c.due_at <= now]
        return sorted(due, key=lambda c: c.due_at)[:limit]

    def settle(self, contact_id: str, outcome: str, now: datetime) -> bool:
        if contact_id not in self.contacts or contact_id in self.settled:
            return False
        self.settled[contact_id] = outcome
        return True

    def erase_customer(self, customer_id: str) -> int:
        ids = [i for i, c in self.contacts.items() if c.customer_id == customer_id]
        for i in ids:
            del self.contacts[i]
        return len(ids)


class FakeTimeline(Calls):
    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[str, dict[str, Any]] = {}

    def add(self, entries: Sequence[dict[str, Any]]) -> int:
        self._call("add")
        new = [e for e in entries if e["_id"] not in self.entries]
        self.entries.update((e["_id"], dict(e)) for e in new)
        return len(new)

    def of(self, customer_id: str, limit: int = 100) -> list[dict[str, Any]]:
        mine = [e for e in self.entries.values() if e["customer_id"] == customer_id]
        return sorted(mine, key=lambda e: e["at"], reverse=True)[:limit]

    def erase_customer(self, customer_id: str) -> int:
        gone = [i for i, e in self.entries.items() if e["customer_id"] == customer_id]
        for i in gone:
            del self.entries[i]
        return len(gone)


class FakeActivity(Calls):
    def __init__(self) -> None:
        super().__init__()
        self.docs: dict[str, dict[str, Any]] = {}

    def touch(self, interactions: Sequence[tuple[str, datetime]]) -> None:
        self._call("touch")
        for customer_id, at in interactions:
            doc = self.docs.get(customer_id)
            if doc is None:
                self.docs[customer_id] = {"last_interaction_at": at}
            elif moves_forward(doc["last_interaction_at"], doc.get("flagged_for"), at):
                self.docs[customer_id] = {"last_interaction_at": at}  # the mark goes with the older date

    def silent(self, since: datetime, before: datetime, limit: int = 500) -> list[Activity]:
        self._call("silent")
        found = sorted((d["last_interaction_at"], c) for c, d in self.docs.items()
                       if is_silent(Activity(c, d["last_interaction_at"], d.get("flagged_for")), since, before))
        return [Activity(c, at) for at, c in found[:limit]]

    def flag(self, flagged: Sequence[tuple[str, datetime]]) -> None:
        for customer_id, at in flagged:
            doc = self.docs.get(customer_id)
            if doc is not None and doc["last_interaction_at"] == at:
                doc["flagged_for"] = at

    def erase_customer(self, customer_id: str) -> int:
        return 1 if self.docs.pop(customer_id, None) is not None else 0


class FakeInsights(Calls):
    """The insights read model in memory: items once each, and the rollups their increments add up to."""

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, InsightItem] = {}
        self.rollups: dict[tuple[str, str, str], dict[str, float]] = {}
        self.worst: dict[tuple[str, str, str], list[tuple[str, float]]] = {}
        self.weekly: dict[tuple[str, str, str], dict[str, float]] = {}
        self.weekly_worst: dict[tuple[str, str, str], list[tuple[str, float]]] = {}

    def record(self, items: Sequence[InsightItem]) -> int:
        self._call("record")
        new = list({i.item_id: i for i in items if i.item_id not in self.items}.values())
        self.items.update((i.item_id, i) for i in new)
        inc = increments(new)
        for key, counters in inc.rollups.items():
            row = self.rollups.setdefault(key, {})
            for name, value in counters.items():
                row[name] = row.get(name, 0) + value
        for key, pairs in inc.worst.items():
            self.worst[key] = sorted(self.worst.get(key, []) + pairs, key=lambda pair: pair[1])[:WORST_KEPT]
        for key, counters in inc.weekly.items():
            row = self.weekly.setdefault(key, {})
            for name, value in counters.items():
                row[name] = row.get(name, 0) + value
        for key, pairs in inc.weekly_worst.items():
            self.weekly_worst[key] = sorted(self.weekly_worst.get(key, []) + pairs,
                                            key=lambda pair: pair[1])[:WORST_KEPT]
        return len(new)

    def rollup(self, period: Period, dimensions: Collection[str]) -> list[RollupRow]:
        # As the Mongo store reads: whole weeks from the weekly rollups, the edges' days from the daily ones.
        full_weeks, loose_days = period.plan()
        weeks, days = {w.isoformat() for w in full_weeks}, {d.isoformat() for d in loose_days}
        return ([RollupRow(date.fromisoformat(day), dim, value, dict(c), tuple(self.weekly_worst.get((day, dim, value), [])))
                 for (day, dim, value), c in self.weekly.items() if dim in dimensions and day in weeks]
                + [RollupRow(date.fromisoformat(day), dim, value, dict(c), tuple(self.worst.get((day, dim, value), [])))
                   for (day, dim, value), c in self.rollups.items() if dim in dimensions and day in days])

    def by_ids(self, ids: Sequence[str]) -> dict[str, InsightItem]:
        return {i: self.items[i] for i in ids if i in self.items}

    def find(self, query: ItemQuery) -> list[InsightItem]:
        found = sorted((i for i in self.items.values() if query.matches(i)), key=lambda i: (-i.day.toordinal(), i.item_id))
        return found[:query.limit]

    def erase_customer(self, customer_id: str) -> int:
        mine = [i for i in self.items.values() if i.customer_id == customer_id]
        for item in mine:
            self.items[item.item_id] = replace(item, customer_id=None, excerpt="")
        return len(mine)


def fake_store() -> AlertsStore:
    return AlertsStore(FakeCases(), FakeOutbox(), FakeDirectory(), FakeSpikes(), FakeScheduled(), FakeTimeline(),
                       FakeActivity(), FakeInsights())
