"""The alerts HTTP API: cases, their lifecycle, CSMs, accounts, and the inbox page."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import apprise
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerts.domain import Case
from alerts.inbox import visible_csms
from alerts.replies import ReplyChannel, ReplyRefused, ReplyRouting, plan_reply
from alerts.reply_check import check_reply
from alerts.stores import AlertsStore
from feedback_shared.auth import AUTH_RESPONSES, Principal, current_principal, require
from feedback_shared.events import AlertStatus, CustomerProfileUpdated, Email, utcnow
from feedback_shared.http import BODY_RESPONSES
from feedback_shared.outbound import OutboundPolicy, OutboundRefused, check_notify_url

# Authentication first, before any other parameter is read.
router = APIRouter(tags=["alerts"], responses=AUTH_RESPONSES, dependencies=[Depends(current_principal)])

#: Which statuses each action may start from (seed 001: no resolving without a response).
TRANSITIONS: dict[str, tuple[tuple[str, ...], AlertStatus]] = {
    "ack": (("open",), "acknowledged"),
    "respond": (("open", "acknowledged"), "responded"),
    "resolve": (("responded",), "resolved"),
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
    consent: Annotated[dict[Annotated[str, Field(max_length=32)], bool], Field(max_length=16)] = Field(
        default_factory=dict, description="e.g. first_name (address by first name), marketing")


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
    case = visible_case(request, store, principal, alert_id)
    out = _public(case)
    out["deliveries"] = [
        {k: v for k, v in d.items() if k in ("kind", "status", "attempts", "sent_at", "last_error")}
        for d in store.outbox.deliveries_for(alert_id)
    ]
    return out


# Before the action route: /replies would otherwise match it as an action.
class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, Field(min_length=1, max_length=5000)]
    channel: ReplyChannel = "email"
    send: bool = False
    override: bool = False


@router.post("/v1/alerts/{alert_id}/replies", responses={
    **BODY_RESPONSES, **NOT_FOUND,
    409: {"description": "Not sent: no e-mail address, no outgoing mailbox or no integration for a public reply."},
    422: {"description": "Invalid body, or (with send) findings not overridden; the findings are listed."}})
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
        return JSONResponse({"detail": "the reply has findings: fix them, or send with override",
                             "language": check.language, "findings": findings},
                            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
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


@router.post("/v1/alerts/{alert_id}/{action}", responses={
    **NOT_FOUND, 409: {"description": "The case's status does not allow this action."}})
async def change_status(alert_id: Annotated[str, Field(max_length=128)], action: Literal["ack", "respond", "resolve"],
                        request: Request, store: StoreDep, principal: Actor) -> dict[str, Any]:
    """Move a case along open → acknowledged → responded → resolved (with timestamps)."""
    await asyncio.to_thread(visible_case, request, store, principal, alert_id)
    allowed_from, to = TRANSITIONS[action]
    now = utcnow()
    case = await asyncio.to_thread(store.cases.transition, alert_id, allowed_from, to, now)
    if case is not None and to == "resolved" and case.promised_by and now > case.promised_by:
        # Resolved after the promise: a breach, even if the SLA clock had not counted it yet.
        if (marked := await asyncio.to_thread(store.cases.mark_once, alert_id, "breached_at", now)) is not None:
            case = marked
            metrics = getattr(request.app.state, "metrics", None)
            if metrics is not None:
                metrics.breaches.inc()
    service = getattr(request.app.state, "service", None)
    if case is not None and service is not None:
        event = await asyncio.to_thread(service.status_changed, case, to)
        await request.app.state.alert_sink.send_all([event])
    if case is None:
        current = store.cases.get(alert_id)
        if current is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no alert {alert_id!r}")
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"cannot {action} a case that is {current.status}; allowed from: {', '.join(allowed_from)}",
        )
    return _public(case)


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
