"""The inbox's pages: sign-in, the open cases, and the script they use.

Signing in trades a token for a session cookie (``alerts.sessions``). Every page is served with a
Content-Security-Policy that allows scripts only from this origin, so no inline script runs, and the
actions post with the page's CSRF token.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from alerts.sessions import COOKIE, Sessions
from alerts.stores import AlertsStore
from feedback_shared.auth import Authenticator, Principal, current_principal, hash_token, require
from feedback_shared.events import NEEDS, utcnow

inbox_router = APIRouter(include_in_schema=False)

#: Scripts and styles only from this origin (the inline <style> blocks are allowed; no inline script).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
MAX_LOGIN_BODY = 4096

STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222} table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.45rem;text-align:left;vertical-align:top} th{background:#f6f6f6}
.critical{color:#b00;font-weight:bold} .high{color:#c50} .overdue{color:#b00;font-weight:bold}
.due-soon{color:#c50} button{margin:0 .3rem .3rem 0} form{margin-bottom:1rem} .muted{color:#777}
.error{color:#b00} header{display:flex;justify-content:space-between;align-items:baseline}
</style>"""


def page(title: str, body: str, *, status_code: int = 200, csrf: str | None = None,
         script: bool = False, scripts: Sequence[str] = ()) -> HTMLResponse:
    """A page; ``script``: with the inbox's script; ``scripts``: these (same-origin paths), in order."""
    meta = f'<meta name="csrf-token" content="{html.escape(csrf)}">' if csrf else ""
    tail = "".join(f'<script src="{html.escape(src)}"></script>'
                   for src in (["/static/inbox.js"] if script else []) + list(scripts))
    document = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}{STYLE}</head>'
                f"<body>{body}{tail}</body></html>")
    return HTMLResponse(document, status_code=status_code, headers=PAGE_HEADERS)


#: Where signing in may lead back to (never a URL from the form as such: no open redirect).
AFTER_LOGIN = ("/", "/insights")


def login_page(error: str | None = None, *, status_code: int = status.HTTP_401_UNAUTHORIZED,
               next_path: str = "/") -> HTMLResponse:
    message = f'<p class="error">{html.escape(error)}</p>' if error else ""
    back = f'<input type="hidden" name="next" value="{html.escape(next_path)}">' if next_path in AFTER_LOGIN[1:] else ""
    heading = "Insights" if next_path == "/insights" else "CSM inbox"
    response = page("Sign in", f"""<h1>{heading}</h1>{message}
<form method="post" action="/login">{back}<label>Access token <input name="token" type="password" autocomplete="off"
 required maxlength="512" size="40"></label> <button type="submit">Sign in</button></form>
<p class="muted">Ask an administrator for a token (<code>feedbackctl tokens create --role csm --csm-id …</code>).</p>""",
                    status_code=status_code)
    response.headers["WWW-Authenticate"] = 'Bearer realm="inbox"'
    return response


def page_principal(request: Request, permission: str = "cases.read", *,
                   next_path: str = "/") -> Principal | HTMLResponse:
    """A page's principal, or the sign-in form (401) when there is none; 403 for a role without
    ``permission`` (cases for the inbox's pages)."""
    try:
        principal = current_principal(request)
    except HTTPException as exc:
        if exc.status_code == status.HTTP_401_UNAUTHORIZED:
            return login_page(next_path=next_path)
        raise
    if not principal.can(permission):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"role {principal.role!r} may not see this page")
    return principal


def get_sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.sessions
    return sessions


@inbox_router.get("/login")
def show_login() -> HTMLResponse:
    """The sign-in form (401: nothing here is readable without a principal)."""
    return login_page()


@inbox_router.post("/login")
async def log_in(request: Request, sessions: Annotated[Sessions, Depends(get_sessions)]) -> Response:
    """Trade a token for a session cookie; back to the inbox."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.rstrip("/") != str(request.base_url).rstrip("/"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="sign-in from another origin")
    body = await request.body()
    if len(body) > MAX_LOGIN_BODY:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=f"sign-in form over {MAX_LOGIN_BODY} bytes")
    form = parse_qs(body.decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    wanted = (form.get("next") or ["/"])[0]
    authenticator: Authenticator = request.app.state.authenticator
    principal = authenticator.authenticate(token) if token else None
    if principal is None:
        return login_page("That token was not accepted (unknown or revoked).", next_path=wanted)
    cookie, _ = sessions.issue(hash_token(token))
    # Back where they came from (one of the known pages), and a role with no inbox to the insights.
    target = wanted if wanted in AFTER_LOGIN else "/"
    if not principal.can("cases.read") and principal.can("insights.read"):
        target = "/insights"
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(COOKIE, cookie, max_age=sessions.max_age_s, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


@inbox_router.post("/logout")
def log_out(_: Annotated[Principal, Depends(current_principal)]) -> Response:
    """End the session (the CSRF token is checked like any state change)."""
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@inbox_router.get("/static/inbox.js")
def inbox_script(_: Annotated[Principal, Depends(require("cases.read"))]) -> Response:
    script = files("alerts").joinpath("static/inbox.js").read_text("utf-8")
    return Response(script, media_type="text/javascript", headers={"X-Content-Type-Options": "nosniff",
                                                                   "Cache-Control": "no-store"})


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


def visible_csms(principal: Principal, fallback_csm_id: str) -> frozenset[str] | None:
    """The CSMs whose cases ``principal`` sees: None for all; a CSM sees its own and the fallback queue's."""
    if principal.sees_all_cases:
        return None
    return frozenset({principal.csm_id or "", fallback_csm_id} - {""})


@inbox_router.get("/", response_class=HTMLResponse)
def inbox(request: Request, csm: Annotated[str | None, Query(max_length=128)] = None,
          need: Annotated[str | None, Query(max_length=32)] = None) -> HTMLResponse:
    """The CSM inbox: open cases by priority, with the SLA clock and the actions."""
    principal = page_principal(request)
    if isinstance(principal, HTMLResponse):
        return principal
    store: AlertsStore = request.app.state.store
    within = visible_csms(principal, request.app.state.fallback_csm_id)
    now = utcnow()
    everything = [c.to_doc() for c in store.cases.find(status=None, csm=None, need=None, limit=1000, within=within)
                  if c.status != "resolved"]
    docs = [d for d in everything if (not csm or d.get("csm_id") == csm) and (not need or need in d.get("needs", []))]
    docs.sort(key=lambda d: (PRIORITY_ORDER.get(d["priority"], 9), d.get("promised_by") or d["created_at"]))
    rows = []
    for d in docs:
        latest = d.get("latest") or {}
        alert_id = html.escape(d["_id"])
        buttons = "".join(f'<button data-action="{a}">{a}</button>' for a in NEXT_ACTIONS.get(d["status"], ()))
        rows.append(
            f'<tr data-alert="{alert_id}"><td class="{html.escape(d["priority"])}">{html.escape(d["priority"])}</td>'
            f'<td class="status">{html.escape(d["status"])}</td><td>{_sla_cell(d, now)}</td>'
            f'<td>{html.escape(str(d.get("csm_id") or "-"))}</td>'
            f'<td>{html.escape(", ".join(d.get("needs", [])))}</td>'
            f'<td><a class="open-case" href="/cases/{alert_id}">{html.escape(str(latest.get("text", ""))[:300]) or "(open)"}</a>'
            f'<div class="muted">{html.escape(str(latest.get("source", "")))} · {html.escape(str(latest.get("language") or ""))}'
            f' · {d.get("event_count", 1)} item(s)</div></td>'
            f'<td>{html.escape(str(d.get("recommended_channel", "")).replace("_", " "))}</td><td>{buttons}</td></tr>'
        )

    def options(values: set[str], chosen: str | None) -> str:
        return "".join(f'<option{" selected" if v == chosen else ""}>{html.escape(v)}</option>' for v in sorted(values))

    who = html.escape(principal.name or principal.csm_id or principal.role)
    body = f"""<header><h1>Open cases <span class="muted">({len(docs)})</span></h1>
<span class="muted">Signed in as {who} ({html.escape(principal.role)}) <button id="logout" type="button">Sign out</button></span></header>
<form method="get">
  <label>CSM <select name="csm"><option value="">all</option>{options({str(d.get("csm_id")) for d in everything if d.get("csm_id")}, csm)}</select></label>
  <label>Need <select name="need"><option value="">all</option>{options({n for d in everything for n in d.get("needs", [])}, need)}</select></label>
  <button type="submit">Filter</button>
</form>
<table><thead><tr><th>Priority</th><th>Status</th><th>SLA</th><th>CSM</th><th>Needs</th><th>What they said</th>
<th>Reach them by</th><th></th></tr></thead>
<tbody>{"".join(rows) or '<tr><td colspan="8">No open cases.</td></tr>'}</tbody></table>
<p class="muted">Playbook: listen and repeat back; apologise; offer at least two options; never "calm down", never
blame; give a date and time.</p>"""
    session = getattr(request.state, "session", None)
    sessions: Sessions = request.app.state.sessions
    return page("CSM inbox", body, csrf=sessions.csrf_token(session) if session else "", script=True)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else html.escape(str(value or ""))


def _timeline_item(entry: dict[str, Any]) -> str:
    kind = entry.get("kind", "")
    if kind == "feedback":
        needs = ", ".join(f"{n['need']} ({n['sentiment']})" for n in entry.get("needs", []))
        what = (f"{html.escape(str(entry.get('feedback_kind') or 'feedback'))} on {html.escape(str(entry.get('source')))}"
                f" — {html.escape(str(entry.get('sentiment')))}{' · ' + html.escape(needs) if needs else ''}"
                f"<div>{html.escape(str(entry.get('text', ''))[:400])}</div>")
    elif kind in ("purchase", "return"):
        what = f"{kind} {html.escape(str(entry.get('order_id')))}: {html.escape(str(entry.get('amount')))} {html.escape(str(entry.get('currency')))}"
    elif kind == "points":
        what = f"{entry.get('points', 0):+d} points ({html.escape(str(entry.get('rule')))})"
    elif kind == "tier":
        what = f"tier {html.escape(str(entry.get('previous_tier')))} → {html.escape(str(entry.get('tier')))}"
    elif kind == "reply":
        what = f"reply by {html.escape(str(entry.get('channel')))}<div>{html.escape(str(entry.get('text', ''))[:400])}</div>"
    else:
        what = html.escape(kind)
    return f'<li class="tl-{html.escape(kind)}"><span class="muted">{_when(entry.get("at"))}</span> {what}</li>'


def _satisfaction(index: dict[str, Any] | None) -> str:
    if not index:
        return '<span class="muted">Satisfaction index: no scored feedback yet.</span>'
    value = float(index["index"])
    mood = "negative" if value <= -0.2 else "positive" if value >= 0.2 else "mixed"
    return (f'Satisfaction index <b class="sat-{mood}">{value:+.2f}</b> <span class="muted">(mean of the last '
            f'{int(index["scores"])} sentiment scores, -1 to 1)</span>')


@inbox_router.get("/cases/{alert_id}", response_class=HTMLResponse)
def case_page(alert_id: str, request: Request) -> HTMLResponse:
    """One case, whole: the customer, their timeline across channels, earlier cases and what was
    replied, the case's history, and the actions, with the reply check as the CSM types."""
    from alerts.routes import visible_case, whole_case

    principal = page_principal(request)
    if isinstance(principal, HTMLResponse):
        return principal
    store: AlertsStore = request.app.state.store
    case = whole_case(store, visible_case(request, store, principal, alert_id[:128]))
    customer = case.get("customer") or {}
    latest = case.get("latest") or {}
    timeline = "".join(_timeline_item(e) for e in case["timeline"]) or "<li class=\"muted\">Nothing yet.</li>"
    earlier = "".join(
        f'<li><a href="/cases/{html.escape(c["alert_id"])}">{html.escape(c["status"])}</a> '
        f'<span class="muted">{_when(c["created_at"])} · {html.escape(", ".join(c["needs"]))}'
        f'{" · outcome " + html.escape(str(c["outcome"])) if c.get("outcome") else ""}</span>'
        + "".join(f'<div class="earlier-reply">replied: {html.escape(str(r["text"])[:300])}</div>' for r in c["replies"])
        + "</li>" for c in case["earlier_cases"]) or '<li class="muted">None.</li>'
    history = "".join(
        f'<li><span class="muted">{_when(h.get("at"))}</span> {html.escape(str(h.get("action")))}'
        f' — {html.escape(str((h.get("by") or {}).get("csm_id") or (h.get("by") or {}).get("role") or "system"))}'
        f'{": " + html.escape(str(h["text"])) if h.get("text") else ""}</li>'
        for h in case.get("history", [])) or '<li class="muted">No actions yet.</li>'
    consent = customer.get("consent") or {}
    needs = "".join(f"<option>{n}</option>" for n in NEEDS)
    outcomes = "".join(f"<option>{o}</option>" for o in ("fixed", "refunded", "replaced", "explained", "goodwill",
                                                          "no_action", "customer_unreachable", "duplicate"))
    cid = html.escape(case["alert_id"])
    body = f"""<header><h1>Case <span class="muted">{cid[:8]}</span> · <span id="case-status">{html.escape(case["status"])}</span></h1>
<a href="/">Back to the inbox</a></header>
<div id="case" data-alert="{cid}">
<section><h2>Customer</h2><p><b>{html.escape(str(customer.get("preferred_name") or case.get("customer_id") or "unknown"))}</b>
 · language {html.escape(str(customer.get("language") or "-"))} · prefers {html.escape(str(customer.get("preferred_channel") or "-"))}
 · tier {html.escape(str(customer.get("tier") or "-"))} · first name {"yes" if consent.get("first_name") else "no"}
 · marketing {"yes" if consent.get("marketing") else "no"}</p>
<p id="satisfaction">{_satisfaction(case.get("satisfaction"))}</p>
<p>What they said: {html.escape(str(latest.get("text", ""))[:600])}</p>
<p class="muted">Priority {html.escape(case["priority"])} · needs {html.escape(", ".join(case.get("needs", [])))}
 · promised by {_when(case.get("promised_by"))}</p></section>
<section><h2>Reply</h2>
<textarea id="reply-text" rows="6" cols="90" maxlength="5000" placeholder="Write to the customer…"></textarea>
<div><label>Channel <select id="reply-channel"><option value="email">e-mail</option><option value="public">public reply</option></select></label>
<button id="reply-send" type="button">Send reply</button> <label><input id="reply-override" type="checkbox"> send despite findings</label></div>
<ul id="findings"></ul><p id="reply-result" class="muted"></p></section>
<section><h2>Work the case</h2>
<div><input id="note-text" size="60" maxlength="4000" placeholder="Internal note"> <button id="note-add" type="button">Add note</button></div>
<div><label>Root cause <select id="root-cause">{needs}</select></label> <button id="root-cause-set" type="button">Set</button></div>
<div><input id="reassign-to" size="20" maxlength="128" placeholder="CSM id"> <button id="reassign" type="button">Reassign</button></div>
<div><button id="ack" type="button" data-case-action="ack">Acknowledge</button>
<button id="waiting" type="button">Waiting on customer</button>
<label>Outcome <select id="outcome">{outcomes}</select></label> <button id="resolve" type="button">Resolve</button></div>
<p id="action-result" class="muted"></p></section>
<section><h2>Timeline</h2><ul id="timeline">{timeline}</ul></section>
<section><h2>Earlier cases</h2><ul id="earlier">{earlier}</ul></section>
<section><h2>History</h2><ul id="history">{history}</ul></section>
</div>"""
    session = getattr(request.state, "session", None)
    sessions: Sessions = request.app.state.sessions
    return page(f"Case {case['alert_id'][:8]}", body, csrf=sessions.csrf_token(session) if session else "", script=True)
