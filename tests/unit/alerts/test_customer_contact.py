"""Messages that close the loop with the customer: the pure decision (language, name, consent, address,
mailbox, a case answered since), and the service over in-memory stores with a clock the test moves
(scheduling, the sweep, redelivery, late follow-ups, the status route)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from alerts.config import Settings
from alerts.customer_contact import (
    ContactTrigger,
    decide_contact,
    delay_notice_for,
    followup_for,
    on_status,
    on_thanked,
)
from alerts.domain import Account, Case
from alerts.main import create_app
from alerts.metrics import AlertsMetrics
from alerts.rules import AlertPolicy
from alerts.service import AlertService
from alerts.stores import AlertsStore
from feedback_shared.events import CustomerThanked, FollowUpDue, derived_id
from tests.unit.alerts.fakes import FakeOutbox, FakeScheduled, fake_store
from tests.unit.alerts.test_decide import negative
from tests.unit.shared.fake_tokens import MemoryTokenStore

T = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
MAILBOX = "mailtos://care:pw@smtp.example.com?from=care@example.com"
ANNA = Account("c-ru", email="anna@example.org", language="ru", preferred_name="Анна Петрова",
               time_zone="Asia/Almaty", first_name_permitted=True)
JOHN = Account("c-en", email="john@example.com", language="en", preferred_name="Mr. John Smith",
               marketing_consent=True)
OFFER_EN = "We have prepared personal offers for you"


def case(case_id: str = "a1b2c3d4-case", customer: str = "c-ru", **fields: Any) -> Case:
    return Case.model_validate({"_id": case_id, "customer_id": customer, "csm_id": "csm-1", "priority": "normal",
                                "created_at": T, "updated_at": T, "promised_by": T + timedelta(hours=8),
                                "internal_target": T + timedelta(hours=6), **fields})


def to_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["to"][0]


# ---- the pure decision ----------------------------------------------------------------------------------
def test_an_acknowledgement_quotes_the_promise_in_the_customers_language_zone_and_first_name() -> None:
    trigger = on_status(case(status="acknowledged"))
    assert trigger is not None and trigger.kind == "acknowledgement"
    [mail] = decide_contact(trigger, ANNA, case(status="acknowledged"), mailbox=MAILBOX).deliveries
    # 17:00 UTC is 22:00 in Almaty; first name only, as permitted.
    assert "Мы получили Ваше обращение" in mail.title and "Здравствуйте, Анна!" in mail.body
    assert "3 декабря 2026, 22:00 (Asia/Almaty)" in mail.body and "Петрова" not in mail.body
    assert to_of(mail.url) == "anna@example.org" and mail.url.startswith(MAILBOX)
    assert mail.delivery_id == str(derived_id("customer-contact", "acknowledgement", "a1b2c3d4-case"))

    en = case(customer="c-en", status="acknowledged")
    [mail] = decide_contact(on_status(en), JOHN, en, mailbox=MAILBOX).deliveries  # type: ignore[arg-type]
    assert mail.title == "We have received your request [a1b2c3d4]"
    assert "Hello Mr. John Smith" in mail.body and "3 December 2026, 17:00 (UTC)" in mail.body
    assert OFFER_EN not in mail.body  # a service message carries no offer, consent or not


def test_nothing_goes_without_an_address_a_mailbox_or_a_promise() -> None:
    ack = case(status="acknowledged")
    trigger = on_status(ack)
    assert trigger is not None
    for account in (None, Account("c-ru", language="ru"), Account("c-ru", erased_at=T)):
        assert decide_contact(trigger, account, ack, mailbox=MAILBOX).outcome == "skipped_no_address"
    assert decide_contact(trigger, ANNA, ack, mailbox=None).outcome == "skipped_no_mailbox"
    assert decide_contact(trigger, ANNA, ack, mailbox="").deliveries == []
    unpromised = case(status="acknowledged", promised_by=None)
    assert decide_contact(trigger, ANNA, unpromised, mailbox=MAILBOX).outcome == "skipped_no_promise"
    assert decide_contact(trigger, ANNA, None, mailbox=MAILBOX).outcome == "skipped_no_case"


def test_only_acknowledged_and_resolved_cases_of_a_customer_write_to_them() -> None:
    assert on_status(case(status="responded")) is None and on_status(case(status="open")) is None
    assert on_status(case(status="acknowledged", customer=None)) is None  # type: ignore[arg-type]
    assert on_status(case(status="acknowledged", kind="crisis")) is None
    resolved = on_status(case(status="resolved"))
    assert resolved is not None and resolved.kind == "resolution_checkin"
    [mail] = decide_contact(resolved, ANNA, case(status="resolved"), mailbox=MAILBOX).deliveries
    assert "Ваша проблема решена?" in mail.title


@pytest.mark.parametrize(("status", "outcome"), [("open", "sent"), ("acknowledged", "sent"),
                                                  ("responded", "skipped_answered"), ("resolved", "skipped_answered")])
def test_a_delay_notice_goes_only_while_nobody_has_answered(status: str, outcome: str) -> None:
    notice = delay_notice_for(case())
    assert notice is not None and notice.due_at == T + timedelta(hours=6)
    decision = decide_contact(notice.trigger(), ANNA, case(status=status), mailbox=MAILBOX)
    assert decision.outcome == outcome
    if outcome == "sent":
        assert "Нам нужно немного больше времени" in decision.deliveries[0].title
        assert "3 декабря 2026, 22:00" in decision.deliveries[0].body  # the promise stands


def test_a_thank_you_names_the_points_and_falls_back_to_the_events_language() -> None:
    event = CustomerThanked(customer_id="c-en", addressed_to="John", message="Thanks!", reason="review_bonus",
                            points=250, language="ru")
    [mail] = decide_contact(on_thanked(event), JOHN, None, mailbox=MAILBOX).deliveries
    assert "250 points" in mail.body and "Thank you!" in mail.title  # the account's language wins
    no_language = Account("c-x", email="x@example.org", preferred_name="Саша")
    [mail] = decide_contact(on_thanked(event), no_language, None, mailbox=MAILBOX).deliveries
    assert "250 баллов" in mail.body and "Здравствуйте, Саша" in mail.body
    zero = on_thanked(event.model_copy(update={"points": 0}))
    assert decide_contact(zero, JOHN, None, mailbox=MAILBOX).outcome == "skipped_no_points"


# ---- the service, with a clock the test moves -----------------------------------------------------------
class World:
    def __init__(self, mailbox: str | None = MAILBOX) -> None:
        self.now = T
        self.store: AlertsStore = fake_store()
        self.registry = CollectorRegistry()
        settings = Settings(customer_mail_url=SecretStr(mailbox) if mailbox else None, fallback_notify=["json://127.0.0.1:9/queue"],
                            followup_lead_s=60)
        self.service = AlertService(self.store, settings, AlertsMetrics.create(self.registry), AlertPolicy(),
                                    clock=lambda: self.now)
        for account in (ANNA, JOHN):
            self.store.directory.put_account(account.customer_id, {
                "email": account.email, "language": account.language, "preferred_name": account.preferred_name,
                "time_zone": account.time_zone, "consent": {"first_name": account.first_name_permitted,
                                                            "marketing": account.marketing_consent}})

    @property
    def mails(self) -> list[dict[str, Any]]:
        outbox: FakeOutbox = self.store.outbox  # type: ignore[assignment]
        return [d for d in outbox.deliveries.values() if d["url"].startswith(MAILBOX)]

    def count(self, kind: str, outcome: str) -> float | None:
        return self.registry.get_sample_value("customer_messages_total", {"kind": kind, "outcome": outcome})

    def late(self) -> float | None:
        return self.registry.get_sample_value("followups_late_total")


def followup(customer: str, due_at: datetime) -> FollowUpDue:
    return FollowUpDue(event_id=derived_id("followup", customer, due_at), customer_id=customer,
                       reason="post_purchase_confirmation", due_at=due_at, order_id="ORD-77")


@pytest.mark.parametrize(("customer", "subject"), [("c-ru", "Как Вам покупка?"), ("c-en", "How")])
def test_a_follow_up_goes_at_its_due_time_once_under_redelivery(customer: str, subject: str) -> None:
    w = World()
    event = followup(customer, T + timedelta(hours=24))
    assert w.service.contacts.notification(event) is None  # scheduled, not sent
    assert w.service.contacts.notification(event) is None  # redelivered: still one scheduled
    scheduled: FakeScheduled = w.store.scheduled  # type: ignore[assignment]
    assert len(scheduled.contacts) == 1
    w.now = T + timedelta(hours=23, minutes=58)
    assert w.service.contacts.sweep() == 0 and w.mails == []
    w.now = T + timedelta(hours=23, minutes=59, seconds=5)  # inside the lead: goes out before its due time
    assert w.service.contacts.sweep() == 1
    [mail] = w.mails
    assert mail["title"].startswith(subject) and "ORD-77" in mail["body"]
    w.now += timedelta(hours=1)
    assert w.service.contacts.sweep() == 0
    assert w.service.contacts.notification(event) == "duplicate"  # redelivered after it went: nothing new
    assert len(w.mails) == 1 and w.count("purchase_followup", "sent") == 1 and w.late() == 0


def test_a_follow_up_sent_after_its_due_time_is_counted_late_once() -> None:
    w = World()
    event = followup("c-ru", T + timedelta(hours=24))
    w.service.contacts.notification(event)
    w.now = T + timedelta(hours=30)  # the sweep was down
    assert w.service.contacts.sweep() == 1 and w.late() == 1
    # Arriving already overdue (a consumer far behind) it goes at once, counted late; again, nothing.
    overdue = followup("c-en", T + timedelta(hours=1))
    assert w.service.contacts.notification(overdue) == "sent"
    assert w.service.contacts.notification(overdue) == "duplicate"
    assert len(w.mails) == 2 and w.late() == 2


def test_a_new_case_schedules_its_delay_notice_sent_at_the_internal_target_in_the_customers_language() -> None:
    w = World()
    w.service.handle_batch([negative("c-ru"), negative("c-en")])
    cases = w.store.cases.find(status="open", csm=None, need=None, limit=10)
    assert len(cases) == 2 and all(c.internal_target and c.promised_by for c in cases)
    w.service.handle_batch([negative("c-ru")])  # joins the open case: nothing new scheduled
    scheduled: FakeScheduled = w.store.scheduled  # type: ignore[assignment]
    assert len(scheduled.contacts) == 2
    target = min(c.internal_target for c in cases if c.internal_target)
    w.now = target - timedelta(seconds=1)
    assert w.service.contacts.sweep() == 0 and w.mails == []
    w.now = max(c.internal_target for c in cases if c.internal_target)
    assert w.service.contacts.sweep() == 2 and w.service.contacts.sweep() == 0
    titles = sorted(m["title"] for m in w.mails)
    assert titles[0].startswith("We need a little more time") and titles[1].startswith("Нам нужно немного")
    assert w.count("delay_notice", "sent") == 2


def test_no_delay_notice_for_a_case_answered_before_its_internal_target() -> None:
    w = World()
    w.service.handle_batch([negative("c-ru")])
    [opened] = w.store.cases.find(status="open", csm=None, need=None, limit=10)
    w.store.cases.transition(opened.id, ("open",), "responded", T)
    assert opened.internal_target is not None
    w.now = opened.internal_target + timedelta(seconds=1)
    assert w.service.contacts.sweep() == 1 and w.mails == []
    assert w.count("delay_notice", "skipped_answered") == 1
    w.now += timedelta(hours=1)
    assert w.service.contacts.sweep() == 0  # settled: never looked at again


def test_an_acknowledgement_is_enqueued_once_however_often_the_status_change_is_handled() -> None:
    w = World()
    acked = case(status="acknowledged")
    w.store.cases.insert([acked])
    w.service.status_changed(acked, "acknowledged")
    w.service.status_changed(acked, "acknowledged")  # a retried request, a second replica
    assert len(w.mails) == 1
    assert w.count("acknowledgement", "sent") == 1 and w.count("acknowledgement", "duplicate") == 1


def test_a_thank_you_goes_with_every_reward_once() -> None:
    w = World()
    rewards = [CustomerThanked(event_id=derived_id("thanks", i), customer_id="c-ru", addressed_to="Анна",
                               message="Спасибо!", reason="purchase", points=points)
               for i, points in enumerate((10, 250))]
    for event in rewards + rewards:
        w.service.contacts.notification(event)
    assert sorted("10 баллов" in m["body"] for m in w.mails) == [False, True]
    assert any("250 баллов" in m["body"] for m in w.mails)
    assert w.count("thank_you", "sent") == 2 and w.count("thank_you", "duplicate") == 2


def test_without_a_mailbox_nothing_is_sent_and_it_is_counted() -> None:
    w = World(mailbox=None)
    acked = case(status="acknowledged")
    w.service.status_changed(acked, "acknowledged")
    w.service.contacts.notification(CustomerThanked(customer_id=str(uuid.uuid4()), addressed_to="x", message="x",
                                                    reason="purchase", points=5))
    assert w.mails == []
    assert w.count("acknowledgement", "skipped_no_mailbox") == 1
    assert w.count("thank_you", "skipped_no_address") == 1  # an unknown customer has no address either


def test_erasure_drops_the_customers_scheduled_messages() -> None:
    w = World()
    w.service.contacts.notification(followup("c-ru", T + timedelta(hours=24)))
    w.service.contacts.notification(followup("c-en", T + timedelta(hours=24)))
    w.service.erase_customer("c-ru", T)
    w.now = T + timedelta(days=2)
    assert w.service.contacts.sweep() == 1 and [to_of(m["url"]) for m in w.mails] == ["john@example.com"]


def test_erasure_blanks_the_thank_yous_and_follow_ups_already_in_the_outbox_and_stops_unsent_ones() -> None:
    w = World()
    w.service.contacts.notification(CustomerThanked(event_id=derived_id("thanks", "e1"), customer_id="c-ru",
                                                    addressed_to="Анна", message="Спасибо!", reason="purchase",
                                                    points=250))
    w.service.contacts.notification(CustomerThanked(event_id=derived_id("thanks", "e2"), customer_id="c-en",
                                                    addressed_to="John", message="Thanks!", reason="purchase",
                                                    points=40))
    outbox: FakeOutbox = w.store.outbox  # type: ignore[assignment]
    [sent] = [d for d in outbox.deliveries.values() if "anna" in d["url"]]
    sent["status"] = "sent"
    w.service.contacts.notification(followup("c-ru", T))  # due now: enqueued by the sweep
    w.service.contacts.sweep()
    anna = [d for d in outbox.deliveries.values() if d.get("customer_id") == "c-ru"]
    assert len(anna) == 2 and any(d["status"] == "pending" for d in anna)
    w.service.erase_customer("c-ru", T)
    left = [d for d in outbox.deliveries.values() if "anna" in d["url"] or "Анна" in d["body"] or "Анна" in d["title"]]
    assert left == []
    erased = [d for d in outbox.deliveries.values() if d["url"] == "erased://"]
    assert len(erased) == 2 and {d["status"] for d in erased} == {"sent", "dead"}
    assert all("customer_id" not in d for d in erased)
    assert [to_of(m["url"]) for m in w.mails] == ["john@example.com"]  # another customer's stays


def test_the_ack_route_sends_the_acknowledgement_through_the_service() -> None:
    settings = Settings(api_keys=["admin-key"], customer_mail_url=SecretStr(MAILBOX))
    app = create_app(settings, CollectorRegistry(), stream=False)
    store = fake_store()
    store.cases.insert([case("a-1", status="open")])
    store.directory.put_account("c-ru", {"email": "anna@example.org", "language": "ru"})
    app.state.store = store
    app.state.service = AlertService(store, settings, AlertsMetrics.create(CollectorRegistry()), AlertPolicy(),
                                     clock=lambda: T)

    class Sink:
        async def send_all(self, events: list[Any]) -> None:
            self.events = events

    app.state.alert_sink = Sink()
    tokens = MemoryTokenStore()
    app.state.authenticator.store = tokens
    headers = {"Authorization": f"Bearer {tokens.token('csm', csm_id='csm-1')}"}
    answer = TestClient(app).post("/v1/alerts/a-1/ack", headers=headers)  # no lifespan: the fakes stay
    assert answer.status_code == 200, answer.text
    outbox: FakeOutbox = store.outbox  # type: ignore[assignment]
    [mail] = [d for d in outbox.deliveries.values() if d["url"].startswith(MAILBOX)]
    assert "Мы получили Ваше обращение" in mail["title"] and to_of(mail["url"]) == "anna@example.org"


def test_followup_lead_moves_the_sweep_before_the_due_time() -> None:
    event = followup("c-ru", T + timedelta(hours=24))
    assert followup_for(event, timedelta(minutes=1)).due_at == T + timedelta(hours=23, minutes=59)
    assert followup_for(event).trigger() == ContactTrigger(
        kind="purchase_followup", key=str(event.event_id), customer_id="c-ru", order_id="ORD-77",
        due_at=T + timedelta(hours=24))


def test_a_batch_of_notifications_costs_one_read_and_one_outbox_write_and_keeps_each_outcome() -> None:
    w = World()
    outbox: FakeOutbox = w.store.outbox  # type: ignore[assignment]
    thanks = [CustomerThanked(event_id=derived_id("thanks", "b", i), customer_id=customer, addressed_to="x",
                              message="x", reason="purchase", points=10 + i)
              for i, customer in enumerate(("c-ru", "c-en", "c-unknown"))]
    later = followup("c-ru", T + timedelta(hours=24))
    batch = [thanks[0], later, thanks[1], thanks[2], thanks[0]]  # the first thank-you redelivered in the batch
    reads_before, writes_before = w.store.directory.calls["accounts_by_id"], outbox.calls["enqueue"]
    outcomes = w.service.contacts.notifications(batch)
    assert outcomes == ["sent", None, "sent", "skipped_no_address", "duplicate"]
    assert w.store.directory.calls["accounts_by_id"] - reads_before == 1
    assert outbox.calls["enqueue"] - writes_before == 1
    assert len(w.mails) == 2 and w.count("thank_you", "sent") == 2 and w.count("thank_you", "duplicate") == 1
    # The same batch again (a redelivery): nothing new goes, and the follow-up stays scheduled once.
    assert w.service.contacts.notifications(batch) == ["duplicate", None, "duplicate", "skipped_no_address",
                                                       "duplicate"]
    w.now = T + timedelta(days=2)
    assert w.service.contacts.sweep() == 1
