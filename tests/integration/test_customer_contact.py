"""Messages that close the loop with the customer, on the real stack: the acknowledgement with the
answer-by time and the check-in after resolution (a case acknowledged and resolved through the API),
thank-yous and due follow-ups from ``customer.notifications.v1`` delivered once although redelivered,
all by e-mail through a real SMTP server, in Russian and in English. The scheduling (the delay notice at
the internal target, the follow-up 24 hours on) runs on the real database with a clock the test moves."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.message import Message
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from pymongo import MongoClient

from alerts.config import Settings as AlertsSettings
from alerts.metrics import AlertsMetrics
from alerts.rules import AlertPolicy
from alerts.service import AlertService
from alerts.stores import AlertsStore
from feedback_shared.events import CustomerThanked, FollowUpDue, derived_id
from feedback_shared.topics import CUSTOMER_NOTIFICATIONS
from feedback_tools.devstack import EmbeddedStack
from tests.helpers import alerts_for, eventually, negative, uid
from tests.integration.conftest import CustomerMailbox
from tests.unit.alerts.test_decide import negative as scored_negative

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]
MAILBOX_URL = "mailto://127.0.0.1:9?from=care@example.com&mode=insecure"


def subject(message: Message) -> str:
    return str(make_header(decode_header(message["Subject"])))


def text(message: Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    return "\n".join(p.get_payload(decode=True).decode(p.get_content_charset() or "utf-8")  # type: ignore[union-attr]
                     for p in parts if p.get_content_type() == "text/plain")


def mails(mailbox: CustomerMailbox, address: str, starting: str) -> list[Message]:
    return [m for m in mailbox.to(address) if subject(m).startswith(starting)]


def accounts(api: Api) -> tuple[tuple[str, str], tuple[str, str]]:
    """A Russian-speaking customer in Almaty (first name permitted) and an English-speaking one."""
    ru, en = uid("cust-ru"), uid("cust-en")
    ru_mail, en_mail = f"{ru}@example.org", f"{en}@example.com"
    api("alerts").put(f"/v1/accounts/{ru}", json={
        "preferred_name": "Анна Петрова", "language": "ru", "email": ru_mail, "time_zone": "Asia/Almaty",
        "consent": {"first_name": True}}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{en}", json={
        "preferred_name": "Mr. John Smith", "language": "en", "email": en_mail,
        "consent": {"marketing": True}}).raise_for_status()
    return (ru, ru_mail), (en, en_mail)


def test_acknowledging_a_case_tells_the_customer_the_answer_by_time_and_resolving_it_asks_once(
    api: Api, customer_mailbox: CustomerMailbox
) -> None:
    (ru, ru_mail), (en, en_mail) = accounts(api)
    negative(api, ru, "My order is a week late and nobody answers the phone. Terrible!")
    negative(api, en, "The heater broke after a week and nobody answers the phone. Awful!")
    [ru_case] = eventually(lambda: alerts_for(api, ru), timeout_s=60)
    [en_case] = eventually(lambda: alerts_for(api, en), timeout_s=60)
    for case in (ru_case, en_case):
        assert api("alerts").post(f"/v1/alerts/{case['alert_id']}/ack").status_code == 200

    [ru_ack] = eventually(lambda: mails(customer_mailbox, ru_mail, "Мы получили Ваше обращение"), timeout_s=30)
    [en_ack] = eventually(lambda: mails(customer_mailbox, en_mail, "We have received your request"), timeout_s=30)
    promised_ru = datetime.fromisoformat(ru_case["promised_by"]).astimezone(ZoneInfo("Asia/Almaty"))
    promised_en = datetime.fromisoformat(en_case["promised_by"]).astimezone(UTC)
    body = text(ru_ack)
    assert "Здравствуйте, Анна!" in body and "Петрова" not in body
    assert f"{promised_ru.year}, {promised_ru:%H:%M} (Asia/Almaty)" in body
    assert ru_case["alert_id"][:8] in subject(ru_ack)
    body = text(en_ack)
    assert "Hello Mr. John Smith" in body and f"{promised_en.year}, {promised_en:%H:%M} (UTC)" in body
    assert "personal offers" not in body  # consent or not, a service message carries no offer

    # Acknowledged again: refused, nothing sent. Responded (no message), then resolved: the check-in, once.
    assert api("alerts").post(f"/v1/alerts/{ru_case['alert_id']}/ack").status_code == 409
    for case in (ru_case, en_case):
        assert api("alerts").post(f"/v1/alerts/{case['alert_id']}/respond").status_code == 200
        assert api("alerts").post(f"/v1/alerts/{case['alert_id']}/resolve").status_code == 200
    eventually(lambda: mails(customer_mailbox, ru_mail, "Ваша проблема решена?"), timeout_s=30)
    eventually(lambda: mails(customer_mailbox, en_mail, "Is your problem solved"), timeout_s=30)
    time.sleep(2)
    assert len(customer_mailbox.to(ru_mail)) == 2 and len(customer_mailbox.to(en_mail)) == 2


async def publish_twice(bootstrap: str, events: list[Any]) -> None:
    """Each event twice, as a producer's retry or a replay would put it on the topic."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in events + events:
            await producer.send_and_wait(CUSTOMER_NOTIFICATIONS.name, CUSTOMER_NOTIFICATIONS.encode(event),
                                         key=event.customer_id.encode())
    finally:
        await producer.stop()


def test_thank_yous_and_due_follow_ups_reach_the_customer_once_under_redelivery(
    api: Api, stack: EmbeddedStack, customer_mailbox: CustomerMailbox
) -> None:
    (ru, ru_mail), (en, en_mail) = accounts(api)
    events: list[Any] = []
    for customer in (ru, en):
        events.append(CustomerThanked(event_id=derived_id("thanks", customer), customer_id=customer,
                                      addressed_to="x", message="Thanks!", reason="purchase", points=250))
        # Due already (a purchase a day ago): sent at once rather than waiting for the sweep.
        events.append(FollowUpDue(event_id=derived_id("followup", customer), customer_id=customer,
                                  reason="post_purchase_confirmation", order_id=f"ORD-{customer[-4:]}",
                                  due_at=datetime.now(UTC) - timedelta(minutes=1)))
    asyncio.run(publish_twice(stack.config.bootstrap, events))

    [thanks] = eventually(lambda: mails(customer_mailbox, ru_mail, "Спасибо! Мы начислили"), timeout_s=60)
    assert "250 баллов" in text(thanks)
    [thanks] = eventually(lambda: mails(customer_mailbox, en_mail, "Thank you! We have added points"), timeout_s=60)
    assert "250 points" in text(thanks)
    [followup] = eventually(lambda: mails(customer_mailbox, ru_mail, "Как Вам покупка?"), timeout_s=60)
    assert f"ORD-{ru[-4:]}" in text(followup)
    eventually(lambda: mails(customer_mailbox, en_mail, "How"), timeout_s=60)
    time.sleep(3)  # the second copies have been consumed by now (one partition per customer, in order)
    assert len(customer_mailbox.to(ru_mail)) == 2 and len(customer_mailbox.to(en_mail)) == 2
    metrics = api("alerts").get("/metrics").text
    late = [line for line in metrics.splitlines() if line.startswith("followups_late_total ")]
    assert late and float(late[0].split()[1]) >= 2


# ---- scheduling on the real database, with a clock the test moves -----------------------------------------
class Scheduled:
    def __init__(self, db: Any) -> None:
        self.now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
        self.store = AlertsStore.mongo(db)
        self.store.ensure_indexes()
        self.registry = CollectorRegistry()
        settings = AlertsSettings(customer_mail_url=SecretStr(MAILBOX_URL), fallback_notify=["json://127.0.0.1:9/queue"],
                                  followup_lead_s=60)
        self.service = AlertService(self.store, settings, AlertsMetrics.create(self.registry), AlertPolicy(),
                                    clock=lambda: self.now)
        self.outbox = db["outbox"]
        for customer, language, name in (("c-ru", "ru", "Анна"), ("c-en", "en", "John")):
            self.store.directory.put_account(customer, {"email": f"{customer}@example.org", "language": language,
                                                        "preferred_name": name})

    def titles(self) -> list[str]:
        return sorted(d["title"] for d in self.outbox.find() if d["url"].startswith("mailto://"))

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
def scheduled(stack: EmbeddedStack) -> Iterator[Scheduled]:
    client: MongoClient[dict[str, Any]] = MongoClient(stack.config.mongo_url, tz_aware=True)
    name = f"alerts_contact_{uuid.uuid4().hex[:8]}"
    yield Scheduled(client[name])
    client.drop_database(name)
    client.close()


def test_the_24_hour_follow_up_goes_at_its_due_time_once_and_late_ones_are_counted(scheduled: Scheduled) -> None:
    w = scheduled
    due = w.now + timedelta(hours=24)
    events = [FollowUpDue(event_id=derived_id("followup-it", c), customer_id=c, reason="post_purchase_confirmation",
                          due_at=due, order_id="ORD-1") for c in ("c-ru", "c-en")]
    for event in events + events:  # redelivered
        assert w.service.contacts.notification(event) is None
    w.now = due - timedelta(minutes=2)
    assert w.service.contacts.sweep() == 0 and w.titles() == []
    w.now = due - timedelta(seconds=30)
    assert w.service.contacts.sweep() == 2
    assert [t.split("?")[0] for t in w.titles()] == ["How was your purchase", "Как Вам покупка"]
    w.now = due + timedelta(hours=1)
    assert w.service.contacts.sweep() == 0 and len(w.titles()) == 2
    assert w.sample("followups_late_total") == 0

    late = FollowUpDue(event_id=derived_id("followup-it", "late"), customer_id="c-en",
                       reason="post_purchase_confirmation", due_at=w.now + timedelta(hours=24))
    w.service.contacts.notification(late)
    w.now += timedelta(hours=25)  # the sweep was down past the due time
    assert w.service.contacts.sweep() == 1 and w.service.contacts.sweep() == 0
    assert w.sample("followups_late_total") == 1 and len(w.titles()) == 3


def test_the_delay_notice_goes_at_the_internal_target_unless_the_case_was_answered(scheduled: Scheduled) -> None:
    w = scheduled
    items = [scored_negative("c-ru", ingested_at=w.now), scored_negative("c-en", ingested_at=w.now)]
    w.service.handle_batch(items)
    w.service.handle_batch(items)  # redelivered
    cases = w.store.cases.find(status="open", csm=None, need=None, limit=10)
    assert len(cases) == 2 and len(w.store.scheduled.due(w.now + timedelta(days=30), 10)) == 2
    en_case = next(c for c in cases if c.customer_id == "c-en")
    w.store.cases.transition(en_case.id, ("open",), "responded", w.now)
    targets = [c.internal_target for c in cases if c.internal_target]
    w.now = min(targets) - timedelta(seconds=1)
    assert w.service.contacts.sweep() == 0
    w.now = max(targets)
    assert w.service.contacts.sweep() == 2 and w.service.contacts.sweep() == 0
    [title] = w.titles()  # the answered case's notice was skipped
    assert title.startswith("Нам нужно немного больше времени")
    assert w.sample("customer_messages_total", kind="delay_notice", outcome="skipped_answered") == 1
