"""Replying to the customer from a case: the pure part. What to send, where, and what to record.

The draft is checked first (``alerts.reply_check``). A reply with findings goes out only with
``override``; each finding overridden is counted. The message is wrapped for the customer in their own
language (``alerts.customer_messages``): by e-mail through the outgoing mailbox (Apprise ``mailto``,
the account's address as ``to``), or, for a public reply, as a signed webhook to the source's
integration, which posts it where the customer wrote.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from alerts.customer_messages import Recipient, render
from alerts.domain import Account, Case, Delivery
from alerts.reply_check import ReplyCheck
from feedback_shared.events import derived_id

ReplyChannel = Literal["email", "public"]


class ReplyRefused(ValueError):
    """The reply cannot go out as asked (409: no address, no mailbox, no integration)."""


@dataclass(frozen=True)
class ReplyRouting:
    #: The outgoing mailbox, as an Apprise ``mailto``/``mailtos`` URL without ``to``.
    customer_mail_url: str | None = None
    #: Per source, the integration's URL that posts a public reply where the customer wrote.
    reply_webhooks: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplyPlan:
    reply: dict[str, Any]
    delivery: Delivery
    overridden: list[str]


def reply_id(case_id: str, text: str, channel: str) -> str:
    """The same reply sent twice (a double click, a retried request) is one reply."""
    return str(derived_id("reply", case_id, channel, hashlib.sha256(text.encode()).hexdigest()))


def recipient_of(account: Account | None, customer_id: str) -> Recipient:
    return Recipient(customer_id=customer_id, preferred_name=account.preferred_name if account else None,
                     first_name_ok=bool(account and account.first_name_permitted),
                     language=account.language if account else None,
                     time_zone=account.time_zone if account else None,
                     marketing_consent=bool(account and account.marketing_consent))


def plan_reply(case: Case, account: Account | None, text: str, channel: ReplyChannel, check: ReplyCheck, *,
               override: bool, by: dict[str, Any], routing: ReplyRouting, now: datetime) -> ReplyPlan:
    """The reply to record and the delivery that takes it to the customer. Raises ``ReplyRefused``."""
    codes = [f.code for f in check.findings]
    if codes and not override:
        raise ReplyRefused("the reply has findings: " + ", ".join(sorted(set(codes))))
    rid = reply_id(case.id, text, channel)
    customer_id = case.customer_id or ""
    if channel == "email":
        if account is None or not account.email:
            raise ReplyRefused("the customer's account has no e-mail address to reply to")
        if not routing.customer_mail_url:
            raise ReplyRefused("no outgoing mailbox is configured (ALERTS_CUSTOMER_MAIL_URL)")
        message = render("reply", recipient_of(account, customer_id), reply_text=text, case_ref=case.id[:8])
        base = routing.customer_mail_url
        url = f"{base}{'&' if '?' in base else '?'}to={quote(account.email, safe='@')}"
        delivery = Delivery(delivery_id=rid, kind="apprise", alert_id=case.id, url=url,
                            title=message.subject, body=message.body, customer_id=customer_id)
    else:
        source = (case.latest.source if case.latest else None) or ""
        hook = routing.reply_webhooks.get(source)
        if not hook:
            raise ReplyRefused(f"no integration posts public replies for source {source!r} (ALERTS_REPLY_WEBHOOKS)")
        url = hook
        payload = {"type": "reply", "case_id": case.id, "thread_id": case.thread_id, "source": source,
                   "in_reply_to": case.latest.feedback_event_id if case.latest else None, "text": text}
        delivery = Delivery(delivery_id=rid, kind="webhook", alert_id=case.id, url=url, msg_id=rid,
                            payload=json.dumps(payload, ensure_ascii=False))
    reply = {"reply_id": rid, "text": text, "channel": channel, "language": check.language, "at": now,
             "by": by, "overridden": codes}
    return ReplyPlan(reply=reply, delivery=delivery, overridden=codes)
