"""Alerts on the real stack: e-mail through a real SMTP server, signed webhooks, cool-down, outages,
the SLA clock moved by the test, and the crisis alert."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from prometheus_client import CollectorRegistry
from pymongo import MongoClient

from alerts.config import Settings as AlertsSettings
from alerts.metrics import AlertsMetrics
from alerts.notifier import Dispatcher
from alerts.rules import AlertPolicy, SlaPolicy, SpikePolicy
from alerts.service import AlertService
from alerts.sla import SlaMonitor
from alerts.stores import AlertsStore
from feedback_shared.events import FeedbackScored, NeedScore, SentimentResult
from feedback_shared.webhooks import verify
from feedback_tools.devstack import EmbeddedStack, free_port
from tests.helpers import Receiver, alerts_for, eventually, negative, uid
from tests.integration.conftest import WEBHOOK_SECRET

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]



class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()






def test_one_email_and_one_signed_webhook_per_alert_and_no_second_page_in_the_cool_down(
    api: Api, smtp: tuple[Mailbox, int], integrations: Receiver
) -> None:
    mailbox, port = smtp
    csm, customer = uid("csm"), uid("cust")
    address = f"{csm}@example.com"
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Nino", "email": address, "notify": [
        f"mailto://127.0.0.1:{port}?from=alerts@feedback.local&to={address}&mode=insecure"]}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm, "preferred_name": "Mr. Beridze"}).raise_for_status()

    negative(api, customer, "The heater broke after a week and nobody answers the phone. Awful!")
    [case] = eventually(lambda: alerts_for(api, customer), timeout_s=30)
    [mail] = eventually(lambda: mailbox.to(address), timeout_s=30)
    assert "Negative review from Mr. Beridze on google" in mail["Subject"]
    # Plain text: one part, its line breaks kept.
    [text_part] = [p for p in mail.walk() if p.get_content_type() == "text/plain"]
    body = text_part.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "\n" in body.strip()
    assert "heater broke" in body and "Playbook" in body and "Recommended channel" in body

    def raised() -> list[dict[str, Any]]:
        return [r for r in integrations.received if r["path"] == "/alert-events"
                and r["body"]["alert_id"] == case["alert_id"] and r["body"]["event_type"] == "alert.raised"]

    [hook] = eventually(raised, timeout_s=30)
    assert verify(WEBHOOK_SECRET, hook["headers"], hook["raw"]) == hook["headers"]["webhook-id"]
    assert hook["headers"]["webhook-id"] == hook["body"]["event_id"]

    # A second negative inside the cool-down updates the case: no second e-mail.
    negative(api, customer, "Still no answer. I am really disappointed.")
    eventually(lambda: alerts_for(api, customer)[0]["event_count"] == 2, timeout_s=30)
    # Resolving it and complaining again at once opens a new case, but the cool-down keeps it quiet.
    for action in ("ack", "respond", "resolve"):
        api("alerts").post(f"/v1/alerts/{case['alert_id']}/{action}").raise_for_status()
    negative(api, customer, "And now the replacement is broken too!")
    eventually(lambda: len(alerts_for(api, customer)) == 2, timeout_s=30)
    newest = [a for a in alerts_for(api, customer) if a["alert_id"] != case["alert_id"]][0]
    assert newest["paged"] is False
    time.sleep(2)
    assert len(mailbox.to(address)) == 1
    assert len(raised()) == 1
    updates = [r for r in integrations.received if r["body"]["alert_id"] == case["alert_id"]
               and r["body"]["event_type"] == "alert.updated"]
    assert {u["body"]["status"] for u in updates} >= {"acknowledged", "responded", "resolved"}


def test_a_receiver_that_is_down_gets_the_alert_once_when_it_is_back(api: Api, receiver: Receiver) -> None:
    csm, customer = uid("csm"), uid("cust")
    receiver.up = False
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Aram", "notify": [receiver.url(csm)]}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm}).raise_for_status()
    negative(api, customer, "Շատ վատ սպասարկում, պատվերը կորել է, ոչ ոք չի պատասխանում։")
    [case] = eventually(lambda: alerts_for(api, customer), timeout_s=30)

    def pages() -> list[dict[str, Any]]:
        deliveries = api("alerts").get(f"/v1/alerts/{case['alert_id']}").json()["deliveries"]
        return [d for d in deliveries if d["kind"] == "apprise"]

    def attempts() -> int:
        return int(pages()[0]["attempts"]) if pages() else 0

    eventually(lambda: attempts() >= 2, timeout_s=30)  # failed, and retried with backoff
    assert receiver.bodies(csm) == []
    receiver.up = True
    eventually(lambda: receiver.bodies(csm), timeout_s=60)
    time.sleep(2)
    assert len(receiver.bodies(csm)) == 1
    [delivery] = pages()
    assert delivery["status"] == "sent"


# ---- the SLA clock and the crisis alert, driven in-process against the real database ---------------
class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def scored(customer: str | None, *, public: bool = False, text: str = "It broke and nobody helps.") -> FeedbackScored:
    return FeedbackScored(
        source="x" if public else "email", kind="mention" if public else "complaint", external_id=uid("e"),
        customer_id=customer, text=text, is_public=public, channel="social" if public else "email",
        feedback_event_id=uuid.uuid4(), model_version="t", language="en",
        sentiment=SentimentResult(label="negative", score=-0.8, confidence=0.9,
                                  probabilities={"negative": 0.9, "neutral": 0.05, "positive": 0.05}),
        needs=[NeedScore(need="reliability", score=0.8)],
    )


@pytest.fixture
def alerts_db(stack: EmbeddedStack) -> Iterator[tuple[AlertsStore, AlertsMetrics, CollectorRegistry]]:
    name = f"alerts_{uuid.uuid4().hex[:8]}"
    with MongoClient(stack.config.mongo_url, tz_aware=True) as client:
        store = AlertsStore.mongo(client[name])
        store.ensure_indexes()
        registry = CollectorRegistry()
        yield store, AlertsMetrics.create(registry), registry
        client.drop_database(name)


def test_sla_escalates_at_the_internal_target_and_breaches_only_after_the_promise(
    alerts_db: tuple[AlertsStore, AlertsMetrics, CollectorRegistry],
) -> None:
    store, metrics, registry = alerts_db
    clock = Clock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    policy = AlertPolicy(sla=SlaPolicy(promise_minutes={"critical": 60, "high": 60, "normal": 60, "low": 60}))
    service = AlertService(store, AlertsSettings(), metrics, policy, clock=clock)
    monitor = SlaMonitor(store.cases, service, metrics, manager_notify=["json://127.0.0.1:9/manager"], clock=clock)
    [late] = service.handle(scored("c-late"))
    [early] = service.handle(scored("c-early"))
    case = store.cases.get(late.alert_id)
    assert case is not None
    assert case.promised_by - case.internal_target == timedelta(minutes=15)  # type: ignore[operator]  # promise 60, target 45

    def count(name: str) -> float:
        return registry.get_sample_value(name) or 0.0

    clock.now += timedelta(minutes=44)
    assert monitor.check() == []
    clock.now += timedelta(minutes=2)  # 46 minutes: past the internal target
    escalated = monitor.check()
    assert {e.alert_id for e in escalated} == {late.alert_id, early.alert_id}
    assert count("sla_escalations_total") == 2
    assert monitor.check() == []  # once
    manager_pages = [d for d in store.outbox.deliveries_for(late.alert_id) if d["url"].endswith("/manager")]
    assert len(manager_pages) == 1

    # One case is resolved before the promise, the other is not.
    for to, allowed in (("acknowledged", ("open",)), ("responded", ("open", "acknowledged")), ("resolved", ("responded",))):
        assert store.cases.transition(early.alert_id, allowed, to, clock.now) is not None
    clock.now += timedelta(minutes=13)  # 59 minutes
    assert monitor.check() == []
    assert count("sla_breaches_total") == 0
    clock.now += timedelta(minutes=2)  # 61 minutes: past the promise
    [breach] = monitor.check()
    assert breach.alert_id == late.alert_id
    assert count("sla_breaches_total") == 1
    assert monitor.check() == []
    assert store.cases.get(early.alert_id).breached_at is None  # type: ignore[union-attr]


def test_one_crisis_alert_when_public_negatives_spike(
    alerts_db: tuple[AlertsStore, AlertsMetrics, CollectorRegistry],
) -> None:
    store, metrics, _ = alerts_db
    clock = Clock(datetime(2026, 11, 2, 12, 0, tzinfo=UTC))
    service = AlertService(store, AlertsSettings(manager_notify=["json://127.0.0.1:9/manager"]), metrics,
                           AlertPolicy(spike=SpikePolicy(window_minutes=10, threshold=3)), clock=clock)
    kinds = []
    for i in range(8):
        clock.now += timedelta(seconds=30)
        kinds += [e.event_type for e in service.handle(scored(None, public=True, text=f"Outage again #{i}"))]
    crises = store.cases.find(status="open", csm=None, need=None, limit=100)
    crisis = [c for c in crises if c.kind == "crisis"]
    assert len(crisis) == 1
    assert crisis[0].priority == "critical" and crisis[0].event_count == 4
    assert len([d for d in store.outbox.deliveries_for(crisis[0].id) if d["url"].endswith("/manager")]) == 1
    # Every public item counted once (8 in the window); private complaints never count.
    assert store.spikes.count(clock.now, timedelta(minutes=10)) == 8
    # Another worker (nothing in memory) counts on and still raises no second crisis in this window …
    other = AlertService(store, AlertsSettings(), metrics, AlertPolicy(spike=SpikePolicy(window_minutes=10, threshold=3)),
                         clock=clock)
    other.handle(scored(None, public=True, text="Outage, still"))
    assert [c.id for c in store.cases.find(status="open", csm=None, need=None, limit=100)
            if c.kind == "crisis"] == [crisis[0].id]
    # … and the next window's spike is a crisis of its own.
    clock.now += timedelta(minutes=11)
    for i in range(4):
        service.handle(scored(None, public=True, text=f"Down again #{i}"))
    crises = [c for c in store.cases.find(status="open", csm=None, need=None, limit=100) if c.kind == "crisis"]
    assert len(crises) == 2


def test_items_from_before_an_erasure_that_arrive_after_it_open_no_case(
    alerts_db: tuple[AlertsStore, AlertsMetrics, CollectorRegistry],
) -> None:
    """Erasure travels on its own topic, so a negative taken in just before it can reach alerts just
    after it: that item is erased too, not made into a case with its text. Items after it count."""
    store, metrics, registry = alerts_db
    requested = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    clock = Clock(requested + timedelta(seconds=5))
    service = AlertService(store, AlertsSettings(), metrics, AlertPolicy(), clock=clock)
    customer = uid("forget")

    def item(text: str, ingested: datetime) -> FeedbackScored:
        return scored(customer, text=text).model_copy(update={"ingested_at": ingested})

    store.directory.put_account(customer, {"csm_id": "csm-a", "preferred_name": "Ms. Aliyeva"})
    [opened] = service.handle(item("Before the request, and handled before the erasure", requested - timedelta(seconds=9)))
    assert store.erase_customer(customer, clock.now, requested) == {"accounts": 1, "cases": 1, "insight_items": 0}
    # The same item redelivered into its erased case brings nothing back.
    redelivered = item("Before the request, and handled before the erasure", requested - timedelta(seconds=9))
    redelivered = redelivered.model_copy(update={"feedback_event_id": store.cases.get(opened.alert_id).first_feedback_event_id})  # type: ignore[union-attr]
    assert service.handle(redelivered) == []
    # An item from before the request, late: dropped and counted.
    assert service.handle(item("Flat 12, Nizami street: the washer leaked", requested - timedelta(seconds=1))) == []
    assert registry.get_sample_value("alerts_erased_skipped_total") == 2
    cases = store.cases.alerts.find({"$or": [{"customer_id": customer}, {"_id": opened.alert_id}]})
    assert "Nizami" not in str(list(cases))
    assert store.cases.get(opened.alert_id).latest is None  # type: ignore[union-attr]

    # The customer comes back after the erasure: a new case, as for anyone.
    store.directory.put_account(customer, {"csm_id": "csm-b"})  # re-onboarded: the mark stays
    [fresh] = service.handle(item("New order, broken again", requested + timedelta(seconds=2)))
    assert fresh.event_type == "alert.raised" and fresh.csm_id == "csm-b"
    # A late item from before the request still does not join that open case.
    assert service.handle(item("Old complaint, late", requested - timedelta(seconds=3))) == []
    case = store.cases.get(fresh.alert_id)
    assert case is not None and case.event_count == 1 and "Old complaint" not in str(case)
    assert registry.get_sample_value("alerts_erased_skipped_total") == 3
    # A tier change loyalty announced for an item from before the request is not kept; a later one is.
    assert store.directory.set_tier(customer, "gold", requested - timedelta(seconds=1)) is False
    assert store.directory.account(customer).tier is None  # type: ignore[union-attr]
    assert store.directory.set_tier(customer, "silver", requested + timedelta(seconds=3)) is True
    assert store.directory.account(customer).tier == "silver"  # type: ignore[union-attr]


def test_loyalty_tier_reaches_alert_priority(api: Api) -> None:
    """The tier is loyalty's, announced on loyalty.points.v1, and kept in alerts' own view."""
    regular, silver = uid("regular"), uid("silver")
    for customer in (regular, silver):
        amounts = ("10", "20") if customer == regular else ("10", "600")
        for n, amount in enumerate(amounts):
            api("ingest").post("/v1/purchases", json={"order_id": f"{customer}-{n}", "customer_id": customer,
                                                      "amount": amount, "currency": "EUR"}).raise_for_status()
    eventually(lambda: api("loyalty").get(f"/v1/customers/{silver}/points").json()["tier"] == "silver", timeout_s=30)
    time.sleep(2)  # the tier event crosses to the alerts service
    for customer in (regular, silver):
        api("ingest").post("/v1/feedback", json={"customer_id": customer,
                                                 "text": "My order arrived broken and nobody has called me back."}
                           ).raise_for_status()
    [plain] = eventually(lambda: alerts_for(api, regular), timeout_s=30)
    [valued] = eventually(lambda: alerts_for(api, silver), timeout_s=30)
    order = ["low", "normal", "high", "critical"]
    assert order.index(valued["priority"]) == order.index(plain["priority"]) + 1


def test_pages_survive_a_killed_alerts_worker_and_are_sent_once(api: Api, stack: EmbeddedStack,
                                                                receiver: Receiver) -> None:
    csm, customer = uid("csm"), uid("cust")
    receiver.up = False
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Dana", "notify": [receiver.url(csm)]}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm}).raise_for_status()
    negative(api, customer, "Die Lieferung ist seit drei Wochen überfällig, niemand antwortet. Schrecklich!")
    [case] = eventually(lambda: alerts_for(api, customer), timeout_s=30)
    eventually(lambda: any(d["kind"] == "apprise" and d["attempts"] >= 1 for d in
                           api("alerts").get(f"/v1/alerts/{case['alert_id']}").json()["deliveries"]), timeout_s=30)

    stack.children.pop("alerts").kill()  # the page is in the outbox, not yet delivered
    receiver.up = True
    stack.start_service("alerts")
    stack.wait_ready(["alerts"])
    eventually(lambda: receiver.bodies(csm), timeout_s=90)
    time.sleep(3)
    assert len(receiver.bodies(csm)) == 1


def test_a_held_page_keeps_its_lease_while_its_worker_lives_and_is_given_up_once_another_took_it(
    alerts_db: tuple[AlertsStore, AlertsMetrics, CollectorRegistry],
) -> None:
    """The lease is short (15 s) so a killed worker's pages go out soon; a live worker renews it, so a
    page waiting behind a slow channel is not taken from it. One cut off for longer than the lease
    finds the page taken and does not send it as well."""
    store, metrics, _ = alerts_db
    clock = Clock(datetime(2026, 11, 2, 12, 0, tzinfo=UTC))
    lease = timedelta(seconds=15)
    settings = AlertsSettings(fallback_notify=["json://127.0.0.1:9/csm"], outbound_allow_hosts=["127.0.0.0/8"],
                              delivery_lease_s=lease.total_seconds())
    sent: list[str] = []
    dispatcher = Dispatcher(store.outbox, settings, metrics, send=lambda url, _title, _body: sent.append(url), clock=clock)
    service = AlertService(store, settings, metrics, AlertPolicy(), clock=clock, handoff=dispatcher.hand_over)

    service.handle(scored("c-renew-1"))
    for _ in range(6):  # 30 s, twice the lease, renewed every third of it
        clock.now += lease / 3
        assert dispatcher.renew_leases() == (1, 0)
        assert store.outbox.claim_due(clock.now, lease, limit=10) == []  # still this worker's
    assert dispatcher.deliver_handed_over(10) == 1 and len(sent) == 1
    assert dispatcher.renew_leases() == (0, 0)  # sent: nothing held

    [second] = service.handle(scored("c-renew-2"))
    clock.now += lease + timedelta(seconds=1)  # cut off (say, a long GC pause or a partition)
    [taken] = store.outbox.claim_due(clock.now, lease, limit=10)
    assert taken["alert_id"] == second.alert_id
    assert dispatcher.renew_leases() == (0, 1)
    assert dispatcher.deliver_handed_over(10) == 1 and len(sent) == 1  # left to the worker that took it


def test_a_running_dispatcher_keeps_the_lease_of_a_page_through_a_send_longer_than_the_lease(
    alerts_db: tuple[AlertsStore, AlertsMetrics, CollectorRegistry],
) -> None:
    """The renewal runs beside the workers: a channel taking three leases to answer keeps its page
    leased to the sender the whole time, so no other worker claims and sends it as well."""
    store, metrics, _ = alerts_db
    settings = AlertsSettings(fallback_notify=["json://127.0.0.1:9/csm"], outbound_allow_hosts=["127.0.0.0/8"],
                              delivery_lease_s=1.2, delivery_poll_s=0.05)
    claims_by_others: list[dict[str, Any]] = []
    sent: list[str] = []

    def slow_send(url: str, _title: str, _body: str) -> None:
        for _ in range(9):  # 3.6 s in all, three times the lease
            time.sleep(0.4)
            claims_by_others.extend(store.outbox.claim_due(datetime.now(UTC), timedelta(seconds=1.2), limit=10))
        sent.append(url)

    dispatcher = Dispatcher(store.outbox, settings, metrics, send=slow_send)
    service = AlertService(store, settings, metrics, AlertPolicy(), handoff=dispatcher.hand_over)
    [raised] = service.handle(scored("c-slow-channel"))

    async def run_until_sent() -> None:
        task = asyncio.create_task(dispatcher.run_forever())
        dispatcher.wake()
        for _ in range(200):
            await asyncio.sleep(0.05)
            if sent:
                break
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run_until_sent())
    assert len(sent) == 1
    assert claims_by_others == []
    [page] = store.outbox.deliveries_for(raised.alert_id)
    assert (page["status"], page["attempts"]) == ("sent", 1)


def test_pages_handed_over_in_memory_are_sent_once_and_survive_a_crash_or_a_clean_stop(
    alerts_db: tuple[AlertsStore, AlertsMetrics, CollectorRegistry],
) -> None:
    """The stream side enqueues a page already claimed and hands it to the dispatcher in memory. Sent, it
    is never claimed again; lost with the process, it is claimed once its lease runs out; on a clean
    stop it goes back to pending at once."""
    store, metrics, _ = alerts_db
    clock = Clock(datetime(2026, 11, 2, 12, 0, tzinfo=UTC))
    settings = AlertsSettings(fallback_notify=["json://127.0.0.1:9/csm"], outbound_allow_hosts=["127.0.0.0/8"],
                              delivery_lease_s=60)
    sent: list[str] = []
    dispatcher = Dispatcher(store.outbox, settings, metrics, send=lambda url, _title, _body: sent.append(url), clock=clock)
    service = AlertService(store, settings, metrics, AlertPolicy(), clock=clock, handoff=dispatcher.hand_over)

    [first] = service.handle(scored("c-handoff-1"))
    [page] = store.outbox.deliveries_for(first.alert_id)
    assert (page["status"], page["attempts"]) == ("sending", 1)
    assert store.outbox.claim_due(clock.now, timedelta(seconds=60), limit=10) == []  # leased to this process
    assert dispatcher.deliver_handed_over(10) == 1
    assert sent == [f"json://127.0.0.1:9/csm?+Idempotency-Key={page['_id']}"]  # the receiver can drop a repeat
    assert store.outbox.deliveries_for(first.alert_id)[0]["status"] == "sent"
    # The same event again: nothing new to hand over, nothing sent twice.
    service.handle(scored("c-handoff-1").model_copy(update={"feedback_event_id": first.feedback_event_id}))
    assert dispatcher.deliver_handed_over(10) == 0 and len(sent) == 1

    # A crash: the handed-over page is lost with the memory; once the lease runs out, a worker claims it.
    crashed: list[dict[str, Any]] = []
    service.handoff = crashed.append
    [second] = service.handle(scored("c-handoff-2"))
    assert len(crashed) == 1
    assert store.outbox.claim_due(clock.now + timedelta(seconds=59), timedelta(seconds=60), limit=10) == []
    [again] = store.outbox.claim_due(clock.now + timedelta(seconds=61), timedelta(seconds=60), limit=10)
    assert again["alert_id"] == second.alert_id and again["attempts"] == 2
    assert again["resumed"] is True  # the crashed worker may have sent it: the title will say so

    # A clean stop: what was handed over and not sent is pending again, due now, its attempt not counted.
    service.handoff = dispatcher.hand_over
    [third] = service.handle(scored("c-handoff-3"))
    assert dispatcher.release_handed_over() == 1
    [back] = store.outbox.claim_due(clock.now, timedelta(seconds=60), limit=10)
    assert back["alert_id"] == third.alert_id and back["attempts"] == 1
