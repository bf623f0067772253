"""The SLA clock: escalate to a manager when the internal target passes, count a breach at the promise.

The clock is injected, so tests move time instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from alerts.agents import AlertEvent, AlertHandler
from alerts.metrics import AlertsMetrics
from alerts.repository import AlertsRepository
from alerts.rules import sla_due
from feedback_shared.events import utcnow

logger = logging.getLogger(__name__)


class SlaMonitor:
    def __init__(self, repo: AlertsRepository, handler: AlertHandler, metrics: AlertsMetrics,
                 manager_notify: list[str], clock: Callable[[], datetime] = utcnow) -> None:
        self.repo = repo
        self.handler = handler
        self.metrics = metrics
        self.manager_notify = manager_notify
        self.clock = clock

    def check(self) -> list[AlertEvent]:
        """Escalate and breach what is due now; each happens once per case, whoever runs it."""
        now = self.clock()
        events: list[AlertEvent] = []
        for case in self.repo.unresolved_due(now):
            escalate, breach = sla_due(case, now)
            if escalate and (marked := self.repo.mark_once(case["_id"], "escalated_at", now)) is not None:
                self.metrics.escalations.inc()
                logger.warning("sla_escalation alert_id=%s priority=%s target=%s", case["_id"], case["priority"],
                               case["internal_target"].isoformat())
                if self.manager_notify:
                    text = (marked.get("latest") or {}).get("text", "")
                    self.handler.enqueue_pages(
                        marked, self.manager_notify,
                        f"[escalation] {case['priority']} case not resolved by its internal target",
                        f"Case {case['_id']} (CSM {case.get('csm_id')}) is {case['status']}; the customer was "
                        f"promised an answer by {case['promised_by'].isoformat(timespec='minutes')}.\n{text[:300]}",
                        cause="escalation")
                events.append(self.handler.announce(marked, "escalation"))
            if breach and (marked := self.repo.mark_once(case["_id"], "breached_at", now)) is not None:
                self.metrics.breaches.inc()
                logger.warning("sla_breach alert_id=%s priority=%s", case["_id"], case["priority"])
                events.append(self.handler.announce(marked, "breach"))
        return events

    async def run_forever(self, interval_s: float, publish: Callable[[list[AlertEvent]], Any]) -> None:
        while True:
            try:
                events = await asyncio.to_thread(self.check)
                if events:
                    await publish(events)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("sla_check_failed")
            await asyncio.sleep(interval_s)
