"""The alerts HTTP API: cases, their lifecycle, CSMs, accounts, and the inbox page."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

import apprise
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from alerts.domain import OPEN_STATUSES, Case
from alerts.inbox import visible_csms
from alerts.replies import ReplyChannel, ReplyRefused, ReplyRouting, plan_reply
from alerts.reply_check import check_reply
from alerts.service import AlertService
from alerts.stores import AlertsStore
from alerts.timeline import satisfaction_index
from feedback_shared.auth import AUTH_RESPONSES, Principal, current_principal, require
from feedback_shared.events import AlertStatus, CustomerProfileUpdated, Email, Flag, Need, utcnow
from feedback_shared.http import BODY_RESPONSES
from feedback_shared.outbound import OutboundPolicy, OutboundRefused, check_notify_url

# Authentication first, before any other parameter is read.
router = APIRouter(tags=["alerts"], responses=AUTH_RESPONSES, dependencies=[Depends(current_principal)])

#: Which statuses each action may start from (seed 001: no resolving without a response).
TRANSITIONS: dict[str, tuple[tuple[str, ...], AlertStatus]] = {
    "ack": (("open",), "acknowledged"),
    "respond": (("open", "acknowledged", "waiting_on_customer"), "responded"),
    "resolve": (("responded", "waiting_on_customer"), "resolved"),
}


def get_store(request: Request) -> AlertsStore:
    store: AlertsStore = request.app.state.store
    return store


StoreDep = Annotated[AlertsStore, Depends(get_store)]
Reader = Annotated[Principal, Depends(require("cases.read"))]
Actor = Annotated[Principal, Depends(require("cases.act"))]
Admin = Annotated[Principal, Depends(require("directory.write"))]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such case, or not one of this CSM's."}}


def within_of(request: Request, principal: Principal) -> frozenset[str] | None:
    return visible_csms(principal, request.app.state.fallback_csm_id)


def visible_case(request: Request, store: AlertsStore, principal: Principal, alert_id: str) -> Case:
    """The case, if ``principal`` may see it; else 404 (another CSM's case does not exist for them)."""
    case = store.cases.get(alert_id)
    within = within_of(request, principal)
    if case is None or (within is not None and case.csm_id not in within):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no alert {alert_id!r}")
    return case


class CsmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    email: Email | None = None
    notify: Annotated[list[Annotated[str, Field(max_length=2048)]], Field(max_length=20)] = Field(
        default_factory=list, description="Notification URLs in Apprise form: mailto://, slack://, json:// …"
    )

    @field_validator("notify")
    @classmethod
    def _apprise_urls(cls, urls: list[str]) -> list[str]:
        for i, url in enumerate(urls):
            if not apprise.Apprise().add(url):
                raise ValueError(f"notify[{i}] is not a notification URL Apprise understands")
        return urls


CONSENT_NAME = r"^[a-z][a-z0-9_]{0,31}$"
#: Consent name -> given. A name is a word, since it becomes a key of the account's document: MongoDB refuses
#: a key with a NUL, a "." or a leading "$" (schemathesis found a 500). Written out for the document, as
#: pydantic would state the key pattern as patternProperties, which let any other key through.
Consents = Annotated[
    dict[Annotated[str, Field(pattern=CONSENT_NAME)], Flag],
    Field(max_length=16),
    WithJsonSchema({"type": "object", "maxProperties": 16, "propertyNames": {"pattern": CONSENT_NAME},
                    "additionalProperties": {"type": "boolean"}}),
]


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csm_id: Annotated[str, Field(max_length=128)] | None = None
    tier: Annotated[str, Field(max_length=32)] | None = None
    preferred_name: Annotated[str, Field(max_length=200)] | None = None
    preferred_channel: Literal["email", "phone", "chat", "social", "sms"] | None = None
    language: Annotated[str, Field(max_length=16)] | None = None
    #: Where e-mail replies go (the account is personal data: erasure deletes it).
    email: Email | None = None
    #: IANA time zone, for the answer-by time in messages (e.g. Asia/Almaty).
    time_zone: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+){0,2}$")] | None = None
    consent: Consents = Field(default_factory=dict, description="e.g. first_name (address by first name), marketing")


def _public(case: Case) -> dict[str, Any]:
    out = {k: v for k, v in case.to_doc().items() if k != "_id"}
    out["alert_id"] = case.id
    return out


@router.get("/v1/alerts")
def list_alerts(
    store: StoreDep,
    principal: Reader,
    request: Request,
    status_: Annotated[AlertStatus | None, Query(alias="status")] = None,
    csm: Annotated[str | None, Query(max_length=128)] = None,
    need: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Cases, newest first, filtered by status, CSM and need. A CSM sees its own and the fallback queue's."""
    return [_public(d) for d in store.cases.find(status=status_, csm=csm, need=need, limit=limit,
                                                 within=within_of(request, principal))]


@router.get("/v1/alerts/{alert_id}", responses=NOT_FOUND)
def get_alert(alert_id: Annotated[str, Field(max_length=128)], store: StoreDep, principal: Reader,
              request: Request) -> dict[str, Any]:
    """The whole case: the case and its history, who the customer is (preferred name, language, channel,
    consent), their timeline across channels (feedback with scores and needs, purchases and returns,
    points and tier, replies), their earlier cases, and the case's deliveries."""
    return whole_case(store, visible_case(request, store, principal, alert_id))


def whole_case(store: AlertsStore, case: Case) -> dict[str, Any]:
    out = _public(case)
    out["deliveries"] = [
        {k: v for k, v in d.items() if k in ("kind", "status", "attempts", "sent_at", "last_error")}
        for d in store.outbox.deliveries_for(case.id)
    ]
    account = store.directory.account(case.customer_id) if case.customer_id else None
    out["customer"] = None if account is None else {
        "customer_id": account.customer_id, "preferred_name": account.preferred_name, "language": account.language,
        "preferred_channel": account.preferred_channel, "email": account.email, "time_zone": account.time_zone,
        "tier": account.tier, "consent": {"first_name": account.first_name_permitted,
                                          "marketing": account.marketing_consent}}
    entries = store.timeline.of(case.customer_id, 100) if case.customer_id else []
    out["timeline"] = [{"entry_id": e["_id"], **{k: v for k, v in e.items() if k not in ("_id", "customer_id")}}
                       for e in entries]
    # How the customer has felt lately: the mean of their last 10 scores (also for one with no account).
    out["satisfaction"] = satisfaction_index(entries)
    if out["customer"] is not None:
        out["customer"]["satisfaction_index"] = out["satisfaction"]["index"] if out["satisfaction"] else None
    earlier = store.cases.customer_history(case.customer_id) if case.customer_id else []
    out["earlier_cases"] = [
        {"alert_id": c.id, "status": c.status, "created_at": c.created_at, "priority": c.priority,
         "needs": c.needs, "outcome": c.outcome, "root_cause": c.root_cause,
         "replies": [{"text": r.get("text"), "at": r.get("at"), "channel": r.get("channel")}
                     for r in (getattr(c, "replies", None) or [])]}
        for c in earlier if c.id != case.id]
    return out


# Before the action route: /replies would otherwise match it as an action.
class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, Field(min_length=1, max_length=5000)]
    channel: ReplyChannel = "email"
    send: Flag = False
    override: Flag = False


@router.post("/v1/alerts/{alert_id}/replies", responses={
    **BODY_RESPONSES, **NOT_FOUND,
    409: {"description": "Not sent: the draft has findings and no override (the findings are listed), or there is "
                        "no e-mail address, no outgoing mailbox or no integration for a public reply."}})
async def reply(alert_id: Annotated[str, Field(max_length=128)], body: ReplyIn, request: Request,
                store: StoreDep, principal: Actor) -> Any:
    """The reply check on a draft (``send: false``: only the findings), or send it to the customer
    (``send: true``): by e-mail, or publicly through the source's integration. The first reply moves
    the case to ``responded``. A draft with findings goes out only with ``override: true``."""
    case = await asyncio.to_thread(visible_case, request, store, principal, alert_id)
    check = check_reply(body.text)
    findings = [f.model_dump() for f in check.findings]
    if not body.send:
        return {"language": check.language, "findings": findings}
    if findings and not body.override:
        # 409 like the other replies that are not sent: the body is valid, the draft is what stands in the
        # way (a 422 would say the request itself was malformed).
        return JSONResponse({"detail": "the reply has findings: fix them, or send with override",
                             "language": check.language, "findings": findings},
                            status_code=status.HTTP_409_CONFLICT)
    settings = request.app.state.settings
    routing = ReplyRouting(
        customer_mail_url=settings.customer_mail_url.get_secret_value() if settings.customer_mail_url else None,
        reply_webhooks=dict(settings.reply_webhooks))
    account = await asyncio.to_thread(store.directory.account, case.customer_id)
    by = {"token_id": principal.token_id, "role": principal.role, "csm_id": principal.csm_id, "name": principal.name}
    try:
        plan = plan_reply(case, account, body.text, body.channel, check, override=body.override, by=by,
                          routing=routing, now=utcnow())
    except ReplyRefused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="the alerts worker is not running")
    updated, event = await asyncio.to_thread(service.send_reply, case, plan)
    await request.app.state.alert_sink.send_all([event])
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if dispatcher is not None:
        dispatcher.wake()
    return {"reply_id": plan.reply["reply_id"], "status": updated.status, "language": check.language,
            "findings": findings, "overridden": plan.overridden}


Outcome = Literal["fixed", "refunded", "replaced", "explained", "goodwill", "no_action", "customer_unreachable",
                  "duplicate"]


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: For resolve: how the case ended.
    outcome: Outcome | None = None


def now_of(request: Request) -> datetime:
    """The service's clock (injected in tests), else the wall clock."""
    service: AlertService | None = getattr(request.app.state, "service", None)
    return service.clock() if service is not None else utcnow()


def actor_of(principal: Principal) -> dict[str, Any]:
    """Who did it, for the case's history and the announcement (no token, only its id)."""
    return {"token_id": principal.token_id, "role": principal.role, "csm_id": principal.csm_id,
            "name": principal.name or None}


async def perform(request: Request, store: AlertsStore, case: Case, action: str, principal: Principal,
                  fields: dict[str, Any], *, from_statuses: tuple[str, ...] | None = None,
                  detail: dict[str, Any] | None = None, verb: str | None = None) -> Case:
    """Apply a CSM's action (history, announcement on alerts.events.v1); 409 when the case's status
    does not allow it."""
    service: AlertService | None = getattr(request.app.state, "service", None)
    by = actor_of(principal)
    if service is not None:
        updated, event = await asyncio.to_thread(service.act, case, action, by, fields, from_statuses=from_statuses,
                                                 detail=detail)
        if event is not None:
            await request.app.state.alert_sink.send_all([event])
    else:  # the API alone (no stream worker): the case changes, nothing is announced
        entry = {"action": action, "by": by, "at": utcnow(), **(detail or {})}
        updated = await asyncio.to_thread(store.cases.act, case.id, fields, entry, utcnow(), from_statuses)
    if updated is None:
        current = store.cases.get(case.id)
        raise HTTPException(status.HTTP_409_CONFLICT, detail=(
            f"cannot {verb or action} a case that is {current.status if current else 'gone'}; "
            f"allowed from: {', '.join(from_statuses or ())}"))
    return updated


CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "The case's status does not allow this action."}}


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, Field(min_length=1, max_length=4000)]


@router.post("/v1/alerts/{alert_id}/notes", responses={**NOT_FOUND, **BODY_RESPONSES})
async def add_note(alert_id: Annotated[str, Field(max_length=128)], body: NoteIn, request: Request,
                   store: StoreDep, principal: Actor) -> dict[str, Any]:
    """An internal note on the case (never sent to the customer), in its history."""
    case = await asyncio.to_thread(visible_case, request, store, principal, alert_id)
    return _public(await perform(request, store, case, "note", principal, {}, detail={"text": body.text}))


class ReassignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csm_id: Annotated[str, Field(min_length=1, max_length=128)]
    reason: Annotated[str, Field(max_length=1000)] | None = None


@router.post("/v1/alerts/{alert_id}/reassign", responses={
    **BODY_RESPONSES, **CONFLICT,
    404: {"description": "No such case, or not one of this CSM's; or no CSM with the csm_id given (named)."}})
async def reassign(alert_id: Annotated[str, Field(max_length=128)], body: ReassignIn, request: Request,
                   store: StoreDep, principal: Actor) -> dict[str, Any]:
    """Hand the case to another CSM, who is paged."""
    case = await asyncio.to_thread(visible_case, request, store, principal, alert_id)
    csms = await asyncio.to_thread(store.directory.csms_by_id, [body.csm_id])
    if body.csm_id not in csms:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no CSM {body.csm_id!r} to hand the case to")
    updated = await perform(request, store, case, "reassigned", principal, {"csm_id": body.csm_id},
                            from_statuses=OPEN_STATUSES,
                            detail={"from": case.csm_id, "to": body.csm_id, "reason": body.reason})
    service: AlertService | None = getattr(request.app.state, "service", None)
    if service is not None and csms[body.csm_id].notify:
        title = f"[{updated.priority}] Case handed to you by {principal.csm_id or principal.role}"
        text = (updated.latest.text[:300] if updated.latest else "")
        await asyncio.to_thread(service.enqueue_pages, updated, list(csms[body.csm_id].notify), title,
                                f"{text}\nCase {updated.id}: {request.app.state.settings.inbox_url}",
                                cause=f"reassigned:{body.csm_id}:{len(updated.history)}")
        dispatcher = getattr(request.app.state, "dispatcher", None)
        if dispatcher is not None:
            dispatcher.wake()
    return _public(updated)


class RootCauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    need: Need


@router.post("/v1/alerts/{alert_id}/root-cause", responses={**NOT_FOUND, **BODY_RESPONSES})
async def set_root_cause(alert_id: Annotated[str, Field(max_length=128)], body: RootCauseIn, request: Request,
                         store: StoreDep, principal: Actor) -> dict[str, Any]:
    """Tag the case with its root cause, one of the 16 needs."""
    case = await asyncio.to_thread(visible_case, request, store, principal, alert_id)
    return _public(await perform(request, store, case, "root_cause", principal, {"root_cause": body.need},
                                 detail={"need": body.need}))


@router.post("/v1/alerts/{alert_id}/waiting", responses={**NOT_FOUND, **CONFLICT})
async def wait_on_customer(alert_id: Annotated[str, Field(max_length=128)], request: Request, store: StoreDep,
                           principal: Actor) -> dict[str, Any]:
    """Waiting on the customer: the SLA clock stops until they write again, then the case goes back to
    its status with the promise moved on by the time spent waiting."""
    case = await asyncio.to_thread(visible_case, request, store, principal, alert_id)
    fields = {"status": "waiting_on_customer", "waiting_since": now_of(request), "status_before_waiting": case.status}
    return _public(await perform(request, store, case, "status:waiting_on_customer", principal, fields,
                                 from_statuses=("open", "acknowledged", "responded")))


# Last of the /v1/alerts/{id}/… routes: it would take the others' paths as actions.
@router.post("/v1/alerts/{alert_id}/{action}", responses={**NOT_FOUND, **CONFLICT, **BODY_RESPONSES})
async def change_status(alert_id: Annotated[str, Field(max_length=128)], action: Literal["ack", "respond", "resolve"],
                        request: Request, store: StoreDep, principal: Actor,
                        body: ActionIn | None = None) -> dict[str, Any]:
    """Move a case along open → acknowledged → responded → resolved (with timestamps, and who did it).
    Resolving may name the outcome."""
    case = await asyncio.to_thread(visible_case, request, store, principal, alert_id)
    allowed_from, to = TRANSITIONS[action]
    now = now_of(request)
    fields: dict[str, Any] = {"status": to, f"{to}_at": now}
    if to == "resolved" and body is not None and body.outcome:
        fields["outcome"] = body.outcome
    updated = await perform(request, store, case, f"status:{to}", principal, fields, from_statuses=allowed_from,
                            detail={"outcome": fields["outcome"]} if "outcome" in fields else None, verb=action)
    if to == "resolved" and updated.promised_by and now > updated.promised_by:
        # Resolved after the promise: a breach, even if the SLA clock had not counted it yet.
        if (marked := await asyncio.to_thread(store.cases.mark_once, alert_id, "breached_at", now)) is not None:
            updated = marked
            metrics = getattr(request.app.state, "metrics", None)
            if metrics is not None:
                metrics.breaches.inc()
    return _public(updated)


@router.put("/v1/csms/{csm_id}", responses=BODY_RESPONSES)
def put_csm(csm_id: Annotated[str, Field(max_length=128)], body: CsmIn, store: StoreDep, _: Admin,
            request: Request) -> dict[str, Any]:
    """Create or replace a CSM and where their alerts are delivered. A notification URL that reaches
    inward (loopback, private, link-local such as 169.254.169.254, the services' own addresses) is
    refused with 422 naming why, unless the operator allow-listed the host."""
    policy: OutboundPolicy = request.app.state.outbound_policy
    refused = []
    for i, url in enumerate(body.notify):
        try:
            check_notify_url(url, policy)
        except OutboundRefused as exc:
            refused.append({"loc": ["body", "notify", i], "msg": str(exc), "type": "outbound_refused"})
    if refused:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=refused)
    store.directory.put_csm(csm_id, body.model_dump(mode="json"))
    return {"csm_id": csm_id, **body.model_dump(mode="json", exclude={"notify"}), "notify_count": len(body.notify)}


class RequeueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=1000)] | None = Field(
        default=None, description="The dead deliveries to send again; omit (or null) for every one.")


PageOperator = Annotated[Principal, Depends(require("pages.requeue"))]


@router.get("/v1/pages")
def dead_pages(store: StoreDep, _: PageOperator,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """Pages and webhook calls given up after their retries (``status: dead``), with the last error."""
    return [{"delivery_id": d["_id"], **{k: v for k, v in d.items() if k in (
        "kind", "alert_id", "status", "attempts", "last_error", "next_attempt_at", "created_at")}}
        for d in store.outbox.dead(limit)]


@router.post("/v1/pages/requeue", responses=BODY_RESPONSES)
def requeue_pages(body: RequeueIn, store: StoreDep, _: PageOperator, request: Request) -> dict[str, int]:
    """Send dead deliveries again (``feedbackctl pages requeue``); each is checked against the outbound
    policy again when sent."""
    requeued = store.outbox.requeue(body.ids, utcnow())
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if dispatcher is not None and requeued:
        dispatcher.wake()
    return {"requeued": requeued}


@router.put("/v1/accounts/{customer_id}", responses={**BODY_RESPONSES, 503: {
    "description": "Saved, but the broker did not take the profile update: send it again."}})
async def put_account(customer_id: Annotated[str, Field(max_length=256)], body: AccountIn, request: Request,
                      store: StoreDep, _: Admin) -> dict[str, Any]:
    """Create or replace a customer's account: the assigned CSM, tier, preferences and consents.

    How the customer wants to be addressed is published as ``customer.profiles.v1`` for the services
    that write to customers (loyalty's thank-you messages)."""
    await asyncio.to_thread(store.directory.put_account, customer_id, body.model_dump(mode="json"))
    sink = getattr(request.app.state, "profile_sink", None)
    if sink is not None:
        profile = CustomerProfileUpdated(
            customer_id=customer_id, preferred_name=body.preferred_name,
            first_name_permitted=bool(body.consent.get("first_name")), language=body.language,
            preferred_channel=body.preferred_channel, tier=body.tier,
        )
        try:
            await asyncio.wait_for(sink.send_all([profile]), timeout=10)
        except Exception as exc:  # the broker's client raises its own error types; all mean "not published"
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="account saved, but the profile "
                                "update could not be published; send it again", headers={"Retry-After": "5"}) from exc
    return {"customer_id": customer_id, **body.model_dump(mode="json")}
