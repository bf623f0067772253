"""The alerts HTTP API: cases, their lifecycle, CSMs, accounts, and the inbox page."""

from __future__ import annotations

import asyncio
import html
from datetime import datetime
from typing import Annotated, Any, Literal

import apprise
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from alerts.domain import Case
from alerts.stores import AlertsStore
from feedback_shared.events import AlertStatus, CustomerProfileUpdated, utcnow

read_router = APIRouter(tags=["alerts"])
write_router = APIRouter(tags=["alerts"])

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


class CsmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    email: EmailStr | None = None
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
    consent: dict[str, bool] = Field(default_factory=dict)


def _public(case: Case) -> dict[str, Any]:
    out = {k: v for k, v in case.to_doc().items() if k != "_id"}
    out["alert_id"] = case.id
    return out


@read_router.get("/v1/alerts")
def list_alerts(
    store: StoreDep,
    status_: Annotated[AlertStatus | None, Query(alias="status")] = None,
    csm: Annotated[str | None, Query(max_length=128)] = None,
    need: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Cases, newest first, filtered by status, CSM and need."""
    return [_public(d) for d in store.cases.find(status=status_, csm=csm, need=need, limit=limit)]


@read_router.get("/v1/alerts/{alert_id}")
def get_alert(alert_id: str, store: StoreDep) -> dict[str, Any]:
    case = store.cases.get(alert_id)
    if case is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no alert {alert_id!r}")
    out = _public(case)
    out["deliveries"] = [
        {k: v for k, v in d.items() if k in ("kind", "status", "attempts", "sent_at", "last_error")}
        for d in store.outbox.deliveries_for(alert_id)
    ]
    return out


@write_router.post("/v1/alerts/{alert_id}/{action}")
async def change_status(alert_id: str, action: Literal["ack", "respond", "resolve"], request: Request,
                        store: StoreDep) -> dict[str, Any]:
    """Move a case along open → acknowledged → responded → resolved (with timestamps)."""
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
        event = await asyncio.to_thread(service.announce, case, f"status:{to}")
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


@write_router.put("/v1/csms/{csm_id}")
def put_csm(csm_id: Annotated[str, Field(max_length=128)], body: CsmIn, store: StoreDep) -> dict[str, Any]:
    """Create or replace a CSM and where their alerts are delivered."""
    store.directory.put_csm(csm_id, body.model_dump(mode="json"))
    return {"csm_id": csm_id, **body.model_dump(mode="json", exclude={"notify"}), "notify_count": len(body.notify)}


@write_router.put("/v1/accounts/{customer_id}", responses={503: {"description": "Saved, but the broker did not "
                                                                 "take the profile update: send it again."}})
async def put_account(customer_id: Annotated[str, Field(max_length=256)], body: AccountIn, request: Request,
                      store: StoreDep) -> dict[str, Any]:
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


INBOX_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CSM inbox</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}} table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:.45rem;text-align:left;vertical-align:top}} th{{background:#f6f6f6}}
.critical{{color:#b00;font-weight:bold}} .high{{color:#c50}} .overdue{{color:#b00;font-weight:bold}}
.due-soon{{color:#c50}} button{{margin:0 .3rem .3rem 0}} form{{margin-bottom:1rem}} .muted{{color:#777}}
</style></head><body>
<h1>Open cases <span class="muted">({count})</span></h1>
<form method="get">
  <label>CSM <select name="csm"><option value="">all</option>{csm_options}</select></label>
  <label>Need <select name="need"><option value="">all</option>{need_options}</select></label>
  <button type="submit">Filter</button>
  <label style="float:right">API key <input id="key" type="password" size="14"></label>
</form>
<table><thead><tr><th>Priority</th><th>Status</th><th>SLA</th><th>CSM</th><th>Needs</th><th>What they said</th>
<th>Reach them by</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>
<p class="muted">Playbook: listen and repeat back; apologise; offer at least two options; never "calm down", never
blame; give a date and time.</p>
<script>
const keyInput = document.getElementById('key');
keyInput.value = localStorage.getItem('feedback-api-key') || 'dev-key';
keyInput.addEventListener('change', () => localStorage.setItem('feedback-api-key', keyInput.value));
async function act(id, action) {{
  const r = await fetch(`/v1/alerts/${{id}}/${{action}}`, {{method: 'POST', headers: {{Authorization: 'Bearer ' + keyInput.value}}}});
  if (!r.ok) {{ alert((await r.json()).detail); return; }}
  const body = await r.json();
  const row = document.querySelector(`tr[data-alert="${{id}}"]`);
  row.querySelector('.status').textContent = body.status;
  if (body.status === 'resolved') row.remove();
}}
</script></body></html>"""

PRIORITY_ORDER = {"critical": 0, "high": 1, "normal": 2, "low": 3}
NEXT_ACTIONS = {"open": ("ack", "respond"), "acknowledged": ("respond",), "responded": ("resolve",)}


def _sla_cell(doc: dict[str, Any], now: datetime) -> str:
    promised, target = doc.get("promised_by"), doc.get("internal_target")
    if not isinstance(promised, datetime) or not isinstance(target, datetime):
        return '<span class="muted">-</span>'
    minutes = int((promised - now).total_seconds() // 60)
    if minutes < 0:
        return f'<span class="overdue">{-minutes} min past the promise</span>'
    css = "due-soon" if now >= target else ""
    return f'<span class="{css}" title="promised by {promised.isoformat(timespec="minutes")}">{minutes} min left</span>'


@read_router.get("/", response_class=HTMLResponse, include_in_schema=False)
def inbox(store: StoreDep, csm: Annotated[str | None, Query(max_length=128)] = None,
          need: Annotated[str | None, Query(max_length=32)] = None) -> HTMLResponse:
    """The CSM inbox: open cases by priority, with the SLA clock and the actions."""
    now = utcnow()
    everything = [c.to_doc() for c in store.cases.find(status=None, csm=None, need=None, limit=1000)
                  if c.status != "resolved"]
    docs = [d for d in everything if (not csm or d.get("csm_id") == csm) and (not need or need in d.get("needs", []))]
    docs.sort(key=lambda d: (PRIORITY_ORDER.get(d["priority"], 9), d.get("promised_by") or d["created_at"]))
    rows = []
    for d in docs:
        latest = d.get("latest") or {}
        alert_id = html.escape(d["_id"])
        buttons = "".join(f'<button data-action="{a}" onclick="act(\'{alert_id}\', \'{a}\')">{a}</button>'
                          for a in NEXT_ACTIONS.get(d["status"], ()))
        rows.append(
            f'<tr data-alert="{alert_id}"><td class="{html.escape(d["priority"])}">{html.escape(d["priority"])}</td>'
            f'<td class="status">{html.escape(d["status"])}</td><td>{_sla_cell(d, now)}</td>'
            f'<td>{html.escape(str(d.get("csm_id") or "-"))}</td>'
            f'<td>{html.escape(", ".join(d.get("needs", [])))}</td>'
            f'<td>{html.escape(str(latest.get("text", ""))[:300])}'
            f'<div class="muted">{html.escape(str(latest.get("source", "")))} · {html.escape(str(latest.get("language") or ""))}'
            f' · {d.get("event_count", 1)} item(s)</div></td>'
            f'<td>{html.escape(str(d.get("recommended_channel", "")).replace("_", " "))}</td><td>{buttons}</td></tr>'
        )

    def options(values: set[str], chosen: str | None) -> str:
        return "".join(f'<option{" selected" if v == chosen else ""}>{html.escape(v)}</option>' for v in sorted(values))

    page = INBOX_PAGE.format(
        count=len(docs), rows="".join(rows) or '<tr><td colspan="8">No open cases.</td></tr>',
        csm_options=options({str(d.get("csm_id")) for d in everything if d.get("csm_id")}, csm),
        need_options=options({n for d in everything for n in d.get("needs", [])}, need),
    )
    return HTMLResponse(page)
