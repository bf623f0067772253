"""Silent customers: an active customer who stops writing and buying is a churn risk (seed 004: most
customers who leave never complain).

Alerts keeps, per customer, when they last interacted (a purchase, a return or a feedback item, by when it
happened). A customer is *active* with an interaction in the last ``active_days`` (default 90). One who
has had none for ``silence_days`` (default 30) gets one low-priority churn-risk case for their CSM. The
case's id is derived from the customer and that last interaction, so however many sweeps or replicas
decide it, it opens once; and no second one opens until the customer interacts again (a new last
interaction, hence a new id).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from alerts.decide import AlertEvent, Routing, alert_event, pages, webhook_delivery
from alerts.domain import Account, Case, Csm, Delivery, Snapshot
from alerts.rules import route
from feedback_shared.events import derived_id
from feedback_shared.loops import check_and_publish

if TYPE_CHECKING:  # the service imports ``interactions`` from here
    from alerts.metrics import AlertsMetrics
    from alerts.service import AlertService
    from alerts.stores import AlertsStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Activity:
    """When a customer last interacted, and the last interaction a churn-risk case was opened for."""

    customer_id: str
    last_interaction_at: datetime
    flagged_for: datetime | None = None


@dataclass(frozen=True)
class SilenceWindow:
    silence: timedelta
    active: timedelta

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """(since, before): a customer whose last interaction falls in [since, before) is silent and active."""
        return now - self.active, now - self.silence


def is_silent(activity: Activity, since: datetime, before: datetime) -> bool:
    """The rule the activity store's ``silent`` query applies (``SilenceWindow.bounds`` gives the bounds):
    the last interaction in [since, before), and no churn-risk case opened for it yet."""
    return since <= activity.last_interaction_at < before and activity.flagged_for != activity.last_interaction_at


#: How far a customer's last interaction must move before it is written again. The silence rule counts
#: days, so an hour changes no decision, and a customer who writes ten times in an hour costs one write,
#: not ten (in make bench's mixed load this update was the embedded database's second-largest cost).
LAST_INTERACTION_RESOLUTION = timedelta(hours=1)


def moves_forward(stored: datetime, flagged_for: datetime | None, latest: datetime) -> bool:
    """Whether an interaction at ``latest`` is written over the stored one: only forward, and then once it
    is at least ``LAST_INTERACTION_RESOLUTION`` later, or at once if a churn-risk case was opened for the
    stored one (the newer interaction must clear that mark, so another silence can open another case)."""
    if latest <= stored:
        return False
    return flagged_for is not None or latest - stored >= LAST_INTERACTION_RESOLUTION


def churn_case_id(activity: Activity) -> str:
    return str(derived_id("churn-risk", activity.customer_id, activity.last_interaction_at.isoformat()))


@dataclass(frozen=True)
class ChurnRisk:
    case: Case
    deliveries: list[Delivery]
    event: AlertEvent


def churn_risk(activity: Activity, account: Account | None, csms: dict[str, Csm], routing: Routing,
               now: datetime) -> ChurnRisk:
    """The case for a silent customer, the page to their CSM (or the fallback queue), its announcement."""
    csm_id = route(account, routing.fallback_csm_id)
    days = (now - activity.last_interaction_at).days
    last = activity.last_interaction_at.date().isoformat()
    summary = (f"No purchase or feedback for {days} days (last on {last}). An active customer gone quiet: "
               "a check-in call or message before they leave.")
    case = Case.model_validate({
        "_id": churn_case_id(activity), "kind": "churn_risk", "customer_id": activity.customer_id, "csm_id": csm_id,
        "priority": "low", "status": "open", "channel": account.preferred_channel if account else None,
        "recommended_channel": (account.preferred_channel if account and account.preferred_channel else "email"),
        "event_count": 0, "created_at": now, "updated_at": now,
        "latest": Snapshot(text=summary, language=account.language if account else None, kind="churn_risk"),
        "silent_since": activity.last_interaction_at,
        "history": [{"action": "opened", "by": None, "at": now, "reason": f"silent for {days} days"}],
    })
    csm = csms.get(csm_id)
    urls = list(csm.notify) if csm else []
    if csm_id == routing.fallback_csm_id:
        urls += [u for u in routing.fallback_notify if u not in urls]
    event = alert_event(case, "raised", cause="churn-risk")
    deliveries = pages(case, urls, f"[low] Churn risk: customer {activity.customer_id} silent for {days} days",
                       summary, cause="churn-risk") + webhook_delivery(event, routing)
    return ChurnRisk(case, deliveries, event)


class SilenceMonitor:
    """The sweep: finds silent customers and opens their churn-risk cases (see the module's doc)."""

    def __init__(self, store: AlertsStore, service: AlertService, metrics: AlertsMetrics, window: SilenceWindow,
                 clock: Callable[[], datetime]) -> None:
        self.store = store
        self.service = service
        self.metrics = metrics
        self.window = window
        self.clock = clock

    def check(self, limit: int = 500) -> list[AlertEvent]:
        store, now = self.store, self.clock()
        since, before = self.window.bounds(now)
        silent = store.activity.silent(since, before, limit)  # the store applies ``is_silent``
        if not silent:
            return []
        accounts = store.directory.accounts_by_id({a.customer_id for a in silent})
        routing = self.service.routing
        csm_ids = {route(accounts.get(a.customer_id), routing.fallback_csm_id) for a in silent}
        csms = store.directory.csms_by_id(csm_ids)
        risks = [churn_risk(a, accounts.get(a.customer_id), csms, routing, now) for a in silent
                 if not (accounts.get(a.customer_id) and accounts[a.customer_id].erased_at)]
        # The cases first, then the marks: a stop in between opens nothing twice (same ids), and the next
        # sweep sets the marks.
        inserted = store.cases.insert([r.case for r in risks])
        events: list[AlertEvent] = []
        for risk in risks:
            if risk.case.id in inserted:
                self.metrics.silent_customers.inc()
                logger.info("churn_risk_case", extra={"alert_id": risk.case.id, "csm": risk.case.csm_id})
                self.service.enqueue_deliveries(risk.deliveries)
                events.append(risk.event)
        store.activity.flag([(a.customer_id, a.last_interaction_at) for a in silent])
        return events

    async def run_forever(self, interval_s: float, publish: Callable[[list[AlertEvent]], Any]) -> None:
        await check_and_publish(interval_s, self.check, publish, name="silence_check")


def interactions(entries: Sequence[dict[str, Any]]) -> list[tuple[str, datetime]]:
    """(customer, when) of the timeline entries that are the customer's own doing: feedback, purchases,
    returns (not points, tiers or our replies)."""
    return [(e["customer_id"], e["at"]) for e in entries
            if e.get("kind") in ("feedback", "purchase", "return") and e.get("customer_id") and e.get("at")]
