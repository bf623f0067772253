"""Insights as an API and a page: trends of negative share by need (or language, source, touch point),
NPS and CSAT over time, what rose against the previous period, and which needs drive detractors.

For role ``reader`` and above (permission ``insights.read``). Not for a CSM: the drill-down quotes every
customer's words, while a CSM sees only its own cases and the fallback queue's.
"""

from __future__ import annotations

import asyncio
import html
import re
from datetime import date
from importlib.resources import files
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import BeforeValidator

from alerts.inbox import page, page_principal
from alerts.insights import (
    DIMENSIONS,
    BadRange,
    Dimension,
    ItemQuery,
    Period,
    item_public,
    period_of,
    report,
    rollup_dimensions,
)
from alerts.stores import AlertsStore
from feedback_shared.auth import AUTH_RESPONSES, Principal, current_principal, require
from feedback_shared.events import Need, SentimentLabel, TouchPoint, utcnow

insights_router = APIRouter(tags=["insights"], responses=AUTH_RESPONSES, dependencies=[Depends(current_principal)])
insights_pages = APIRouter(include_in_schema=False)

InsightsReader = Annotated[Principal, Depends(require("insights.read"))]
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _day_text(value: object) -> object:
    """A day is written YYYY-MM-DD: pydantic alone reads "0" or "1700000000" as a Unix time (schemathesis
    found to=0 taken as 1970-01-01)."""
    if isinstance(value, str) and not ISO_DAY.fullmatch(value):
        raise ValueError("a day is written YYYY-MM-DD")
    return value


Day = Annotated[date | None, BeforeValidator(_day_text), Query(description="YYYY-MM-DD")]
BAD_RANGE: dict[int | str, dict[str, Any]] = {422: {"description": "A bad date, a reversed range or one over 400 days."}}
#: The vendored charting library (uPlot, MIT) and the page's own script: served from here, no CDN.
STATIC = {
    "insights.js": ("static/insights.js", "text/javascript"),
    "vendor/uplot/uPlot.iife.min.js": ("static/vendor/uplot/uPlot.iife.min.js", "text/javascript"),
    "vendor/uplot/uPlot.min.css": ("static/vendor/uplot/uPlot.min.css", "text/css"),
}


def _period(start: date | None, end: date | None) -> Period:
    try:
        return period_of(start, end, utcnow().date())
    except BadRange as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc


def insights_report(store: AlertsStore, period: Period, by: Dimension) -> dict[str, Any]:
    # The period before is read only for what rose (dimension ``by``).
    rows = store.insights.rollup(period, rollup_dimensions(by)) + store.insights.rollup(period.previous(), [by])
    return report(rows, period, by, store.insights.by_ids)


@insights_router.get("/v1/insights", responses=BAD_RANGE)
async def get_insights(request: Request, _: InsightsReader,
                       start: Annotated[Day, Query(alias="from")] = None,
                       end: Annotated[Day, Query(alias="to")] = None,
                       by: Dimension = "need") -> dict[str, Any]:
    """Weekly negative share per group (``by``), NPS and CSAT per week, the groups whose negative count
    rose most against the previous period of the same length (with their most negative items), the needs
    detractors mention against promoters', per touch point the mean feeling answers expected and perceived
    (1-5) and the gap (perceived minus expected, over the answers that rated both), and totals. Weeks run Monday to Sunday; by default this week
    and the 7 before it."""
    store: AlertsStore = request.app.state.store
    return await asyncio.to_thread(insights_report, store, _period(start, end), by)


@insights_router.get("/v1/insights/items", responses=BAD_RANGE)
async def get_insight_items(
    request: Request, _: InsightsReader,
    start: Annotated[Day, Query(alias="from")] = None,
    end: Annotated[Day, Query(alias="to")] = None,
    need: Need | Literal["none"] | None = None,
    language: Annotated[str | None, Query(max_length=16)] = None,
    source: Annotated[str | None, Query(max_length=64)] = None,
    touch_point: TouchPoint | Literal["unknown"] | None = None,
    sentiment: SentimentLabel | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """The items behind a number, newest first. With ``need`` and ``sentiment``: the items with that
    polarity about that need; need ``none`` is the items that named no need."""
    store: AlertsStore = request.app.state.store
    query = ItemQuery(period=_period(start, end), need=need, language=language, source=source,
                      touch_point=touch_point, sentiment=sentiment, limit=limit)
    return [item_public(i) for i in await asyncio.to_thread(store.insights.find, query)]


@insights_pages.get("/insights", response_class=HTMLResponse)
def insights_page(request: Request, start: Annotated[Day, Query(alias="from")] = None,
                  end: Annotated[Day, Query(alias="to")] = None, by: Dimension = "need") -> HTMLResponse:
    """The insights page: the charts are drawn by ``/static/insights.js`` from ``GET /v1/insights``."""
    principal = page_principal(request, "insights.read", next_path="/insights")
    if isinstance(principal, HTMLResponse):
        return principal
    period = _period(start, end)
    options = "".join(f'<option{" selected" if d == by else ""}>{d}</option>' for d in DIMENSIONS)
    who = html.escape(principal.name or principal.csm_id or principal.role)
    body = f"""<header><h1>Insights</h1><span class="muted">Signed in as {who} ({html.escape(principal.role)})</span></header>
<form method="get" action="/insights" id="range">
 <label>From <input type="date" name="from" value="{period.start.isoformat()}"></label>
 <label>To <input type="date" name="to" value="{period.end.isoformat()}"></label>
 <label>By <select name="by">{options}</select></label> <button type="submit">Show</button></form>
<div id="insights" data-from="{period.start.isoformat()}" data-to="{period.end.isoformat()}" data-by="{html.escape(by)}">
<p id="totals" class="muted">Loading…</p>
<section><h2>Negative share by {html.escape(by.replace("_", " "))}, per week</h2><div id="chart-negative" class="chart"></div></section>
<section><h2>NPS and CSAT, per week</h2><div id="chart-scores" class="chart"></div></section>
<section><h2>Rising against the previous period</h2><table id="rising"><thead><tr><th>{html.escape(by.replace("_", " "))}</th>
<th>Negative now</th><th>Before</th><th>Change</th><th>Most negative items</th></tr></thead><tbody></tbody></table></section>
<section><h2>What detractors talk about, against promoters</h2><div id="chart-drivers" class="chart"></div>
<table id="drivers"><thead><tr><th>Need</th><th>Detractors</th><th>Share of detractors</th><th>Promoters</th>
<th>Share of promoters</th></tr></thead><tbody></tbody></table></section>
<section><h2>Expected against perceived, per touch point</h2><div id="chart-expectations" class="chart"></div>
<table id="expectations"><thead><tr><th>Touch point</th><th>Expected</th><th>Perceived</th><th>Gap</th>
<th>Answers</th></tr></thead><tbody></tbody></table></section>
<section><h2>Items</h2><p class="muted" id="items-caption">Choose a group above to see its items.</p>
<table id="items"><thead><tr><th>Day</th><th>Sentiment</th><th>Needs</th><th>Source</th><th>Touch point</th><th>NPS</th>
<th>CSAT</th><th>What they said</th></tr></thead><tbody></tbody></table></section>
</div>
<link rel="stylesheet" href="/static/vendor/uplot/uPlot.min.css">"""
    return page("Insights", body, scripts=["/static/vendor/uplot/uPlot.iife.min.js", "/static/insights.js"])


@insights_pages.get("/static/{name:path}")
def insights_static(name: str, _: InsightsReader) -> Response:
    """The insights page's script and the charting library it draws with."""
    if name not in STATIC:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such file")
    path, media_type = STATIC[name]
    return Response(files("alerts").joinpath(path).read_bytes(), media_type=media_type,
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"})
