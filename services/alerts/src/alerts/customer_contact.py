"""Closing the loop with the customer: which message a trigger sends, to whom, and when. Pure.

Five triggers, one message each (``alerts.customer_messages`` renders it in the customer's language):

- a case acknowledged → an acknowledgement quoting the answer-by promise (``Case.promised_by``);
- a case still unanswered at its internal target → a delay notice (the promise stands);
- a reward (``CustomerThanked``) → a thank-you with the points;
- a purchase's follow-up (``FollowUpDue``) → the follow-up, at its due time;
- a case resolved → a check-in asking whether the problem is solved.

Everything goes by e-mail through the outgoing mailbox (``ALERTS_CUSTOMER_MAIL_URL``, the account's
address as ``to``), as a delivery in the outbox. Each delivery's id is derived from the trigger's
business key (the case, the reward's event, the purchase's event), so a redelivered event, a second
worker or a second sweep enqueues nothing new: the outbox inserts on ``_id``.

What is due later (the delay notice, the follow-up) is a ``ScheduledContact``, swept when due
(``alerts.contact_sweep``); whether it still applies is decided again at that moment, from the case as it
is then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, get_args
from urllib.parse import quote

from alerts.customer_messages import render
from alerts.domain import Account, Case, Delivery
from alerts.replies import recipient_of
from feedback_shared.events import CustomerThanked, FollowUpDue, derived_id

ContactKind = Literal["acknowledgement", "delay_notice", "thank_you", "purchase_followup", "resolution_checkin"]
CONTACT_KINDS: tuple[ContactKind, ...] = get_args(ContactKind)
#: What became of a trigger (``customer_messages_total{kind,outcome}``). ``sent``: a delivery is in the
#: outbox now; ``duplicate``: it was there already (a redelivery); the others: nothing to send.
ContactOutcome = Literal["sent", "duplicate", "skipped_no_address", "skipped_no_mailbox", "skipped_no_promise",
                         "skipped_answered", "skipped_no_case", "skipped_no_points"]
CONTACT_OUTCOMES: tuple[ContactOutcome, ...] = get_args(ContactOutcome)
#: Case statuses in which nobody has answered the customer yet: a delay notice still applies.
UNANSWERED_STATUSES = ("open", "acknowledged")
ScheduledKind = Literal["delay_notice", "purchase_followup"]


@dataclass(frozen=True)
class ContactTrigger:
    """Something that may send the customer a message. ``key`` is the business id it is about (the
    case's id, the reward's or the purchase's event id): one message per kind and key, ever."""

    kind: ContactKind
    key: str
    customer_id: str
    case_id: str | None = None
    points: int | None = None
    order_id: str | None = None
    #: When the message is due (a follow-up's ``due_at``); None: now.
    due_at: datetime | None = None
    #: The language the event suggests, used only when the account names none.
    language: str | None = None


@dataclass(frozen=True)
class ContactDecision:
    trigger: ContactTrigger
    #: ``sent`` when ``deliveries`` holds the message; the service turns it into ``duplicate`` when the
    #: outbox had it already.
    outcome: ContactOutcome
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass(frozen=True)
class ScheduledContact:
    """A contact due later, keyed by ``contact_id`` (derived from kind and key: scheduled once)."""

    contact_id: str
    kind: ScheduledKind
    key: str
    customer_id: str
    due_at: datetime
    case_id: str | None = None
    order_id: str | None = None
    #: The deadline it must go out by (a follow-up's ``due_at``); after it, the send is late.
    deadline: datetime | None = None
    language: str | None = None

    def trigger(self) -> ContactTrigger:
        return ContactTrigger(kind=self.kind, key=self.key, customer_id=self.customer_id, case_id=self.case_id,
                              order_id=self.order_id, due_at=self.deadline, language=self.language)


# ---- triggers from events and cases ---------------------------------------------------------------------
def on_status(case: Case) -> ContactTrigger | None:
    """The trigger of a case's new status: acknowledged and resolved tell the customer; nothing else does."""
    if case.kind != "case" or not case.customer_id:
        return None
    kind: ContactKind | None = {"acknowledged": "acknowledgement", "resolved": "resolution_checkin"}.get(
        case.status)  # type: ignore[assignment]
    if kind is None:
        return None
    return ContactTrigger(kind=kind, key=case.id, customer_id=case.customer_id, case_id=case.id)


def on_thanked(event: CustomerThanked) -> ContactTrigger:
    # The event's id is derived from the ledger entry (loyalty): a reward announced again has the same.
    return ContactTrigger(kind="thank_you", key=str(event.event_id), customer_id=event.customer_id,
                          points=event.points, language=event.language)


def scheduled_id(kind: ScheduledKind, key: str) -> str:
    return str(derived_id("customer-contact-scheduled", kind, key))


def delay_notice_for(case: Case) -> ScheduledContact | None:
    """The delay notice a newly opened case schedules, at its internal target (0.75 of the promise)."""
    if case.kind != "case" or not case.customer_id or case.promised_by is None or case.internal_target is None:
        return None
    return ScheduledContact(contact_id=scheduled_id("delay_notice", case.id), kind="delay_notice", key=case.id,
                            customer_id=case.customer_id, due_at=case.internal_target, case_id=case.id)


def followup_for(event: FollowUpDue, lead: timedelta = timedelta(0)) -> ScheduledContact:
    """The purchase follow-up, swept ``lead`` before its due time so that it goes out by it."""
    return ScheduledContact(contact_id=scheduled_id("purchase_followup", str(event.event_id)),
                            kind="purchase_followup", key=str(event.event_id), customer_id=event.customer_id,
                            due_at=event.due_at - lead, order_id=event.order_id, deadline=event.due_at)


def is_late(trigger: ContactTrigger, now: datetime) -> bool:
    """A message with a deadline sent after it (``followups_late_total`` for the follow-ups)."""
    return trigger.due_at is not None and now > trigger.due_at


# ---- the decision ---------------------------------------------------------------------------------------
def contact_id(trigger: ContactTrigger) -> str:
    """The delivery's id: one message per kind and business key, however often it is decided."""
    return str(derived_id("customer-contact", trigger.kind, trigger.key))


def mail_url(mailbox: str, address: str) -> str:
    """The outgoing mailbox's Apprise URL, addressed to ``address``."""
    return f"{mailbox}{'&' if '?' in mailbox else '?'}to={quote(address, safe='@')}"


def decide_contact(trigger: ContactTrigger, account: Account | None, case: Case | None, *,
                   mailbox: str | None) -> ContactDecision:
    """The message ``trigger`` sends now, or why it sends none.

    Args:
        trigger: what happened.
        account: the customer's account (language, name, consents, e-mail address), if any.
        case: the case as it is now, for the case's messages (a delay notice checks it has not been
            answered since it was scheduled; the acknowledgement quotes its promise).
        mailbox: the outgoing mailbox (Apprise ``mailto``/``mailtos`` URL without ``to``), if configured.
    """
    def skip(outcome: ContactOutcome) -> ContactDecision:
        return ContactDecision(trigger, outcome)

    answer_by: datetime | None = None
    if trigger.kind in ("acknowledgement", "delay_notice", "resolution_checkin"):
        if case is None:
            return skip("skipped_no_case")
        if trigger.kind == "delay_notice" and case.status not in UNANSWERED_STATUSES:
            return skip("skipped_answered")  # responded, resolved: the customer has heard from us
        if trigger.kind != "resolution_checkin":
            if case.promised_by is None:
                return skip("skipped_no_promise")  # never an acknowledgement without a date and time
            answer_by = case.promised_by
    if trigger.kind == "thank_you" and (trigger.points is None or trigger.points < 1):
        return skip("skipped_no_points")  # a thank-you names the reward; a zero one is not a reward
    if account is None or not account.email:
        return skip("skipped_no_address")
    if not mailbox:
        return skip("skipped_no_mailbox")
    recipient = recipient_of(account, trigger.customer_id)
    if recipient.language is None and trigger.language:
        recipient = recipient.model_copy(update={"language": trigger.language})
    # No offers: these are service messages; marketing would need a decision (and the consent) of its own.
    message = render(trigger.kind, recipient, answer_by=answer_by, points=trigger.points,
                     order_id=trigger.order_id, case_ref=trigger.case_id[:8] if trigger.case_id else None)
    delivery = Delivery(delivery_id=contact_id(trigger), kind="apprise",
                        alert_id=trigger.case_id or f"customer-contact:{trigger.key}",
                        url=mail_url(mailbox, account.email), title=message.subject, body=message.body,
                        customer_id=trigger.customer_id)
    return ContactDecision(trigger, "sent", [delivery])
