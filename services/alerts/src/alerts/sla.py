"""The SLA clock: escalate to a manager when the internal target passes, count a breach at the promise.

The clock is injected, so tests move time instead of waiting for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from alerts.decide import AlertEvent
from alerts.metrics import AlertsMetrics
from alerts.ports import CaseStore
from alerts.rules import sla_due
from alerts.service import AlertService
from feedback_shared.events import utcnow
from feedback_shared.loops import check_and_publish

logger = logging.getLogger(__name__)


class SlaMonitor:
    def __init__(self, cases: CaseStore, service: AlertService, metrics: AlertsMetrics,
                 manager_notify: list[str], clock: Callable[[], datetime] = utcnow) -> None:
        self.cases = cases
        self.service = service
        self.metrics = metrics
        self.manager_notify = manager_notify
        self.clock = clock

    def check(self) -> list[AlertEvent]:
        """Escalate and breach what is due now; each happens once per case, whoever runs it."""
        now = self.clock()
        events: list[AlertEvent] = []
        for case in self.cases.unresolved_due(now):
            escalate, breach = sla_due(case, now)
            if escalate and (marked := self.cases.mark_once(case.id, "escalated_at", now)) is not None:
                self.metrics.escalations.inc()
                logger.warning("sla_escalation", extra={
                    "alert_id": case.id, "priority": case.priority,
                    "target": case.internal_target.isoformat() if case.internal_target else None})
                if self.manager_notify:
                    text = marked.latest.text if marked.latest else ""
                    promised = case.promised_by.isoformat(timespec="minutes") if case.promised_by else "-"
                    self.service.enqueue_pages(
                        marked, self.manager_notify,
                        f"[escalation] {case.priority} case not resolved by its internal target",
                        f"Case {case.id} (CSM {case.csm_id}) is {case.status}; the customer was "
                        f"promised an answer by {promised}.\n{text[:300]}",
                        cause="escalation")
                events.append(self.service.announce(marked, "escalation"))
            if breach and (marked := self.cases.mark_once(case.id, "breached_at", now)) is not None:
                self.metrics.breaches.inc()
                logger.warning("sla_breach", extra={"alert_id": case.id, "priority": case.priority})
                events.append(self.service.announce(marked, "breach"))
        return events

    async def run_forever(self, interval_s: float, publish: Callable[[list[AlertEvent]], Any]) -> None:
        await check_and_publish(interval_s, self.check, publish, name="sla_check")
