"""The ingest HTTP API: one route per kind of input, a batch route, signed webhooks and erasure."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from feedback_shared.auth import Principal, current_principal, require
from feedback_shared.errors import DependencyUnavailable
from feedback_shared.events import (
    CustomerErasureRequested,
    Slug,
)
from feedback_shared.http import BODY_RESPONSES
from feedback_shared.kafka import max_event_bytes
from feedback_shared.topics import CUSTOMER_ERASURE
from feedback_shared.webhooks import SignatureError, verify
from ingest.access import refusal
from ingest.config import Settings
from ingest.mapping import parse_item, submission_for, webhook_items
from ingest.schemas import (
    Accepted,
    BatchIn,
    BatchResult,
    ComplaintIn,
    ItemResult,
    MentionIn,
    PurchaseIn,
    ReturnIn,
    ReviewIn,
    SuggestionIn,
    SurveyIn,
)
from ingest.service import IngestService, Outcome, Submission

# Authentication first, before any other parameter is read.
router = APIRouter(prefix="/v1", tags=["ingest"], dependencies=[Depends(current_principal)])
webhook_router = APIRouter(prefix="/v1", tags=["ingest"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Accepted, "description": "Already accepted earlier: the first event_id."},
    **BODY_RESPONSES,
    401: {"description": "No token, or a token that is unknown or revoked."},
    403: {"description": "The token may not write this (its role, source or commerce permission)."},
    413: {"description": "Body too large, or the event it makes is too large for the stream."},
    503: {"description": "Broker or database unreachable; retry after Retry-After seconds."},
}


def get_service(request: Request) -> IngestService:
    service: IngestService = request.app.state.ingest_service
    return service


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


ServiceDep = Annotated[IngestService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
WriterDep = Annotated[Principal, Depends(require("ingest.write"))]


def pseudonym_key(request: Request) -> bytes:
    settings: Settings = request.app.state.settings
    return settings.pseudonym_key.get_secret_value().encode()


def too_large(request: Request, submission: Submission) -> str | None:
    """Why ``submission``'s event is too large for the stream, or None."""
    settings: Settings = request.app.state.settings
    size, limit = len(submission.spec.encode(submission.event)), max_event_bytes(settings.kafka)
    if size > limit:
        return (f"the event would be {size} bytes, over the {limit}-byte limit for one event on the stream "
                "(shorten the text)")
    return None


def allowed(request: Request, principal: Principal, submission: Submission) -> Submission:
    """``submission``, if ``principal`` may write it (else 403 naming why) and it fits the stream
    (else 413 naming the limit: accepted, it would be lost where a stage cannot publish it)."""
    if (reason := refusal(principal, submission)) is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=reason)
    if (reason := too_large(request, submission)) is not None:
        request.app.state.ingest_service.metrics.rejected.labels(reason="too_large").inc()
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=reason)
    return submission


def _answer(response: Response, outcome: Outcome) -> Accepted:
    response.status_code = status.HTTP_200_OK if outcome.duplicate else status.HTTP_202_ACCEPTED
    return Accepted(status="duplicate" if outcome.duplicate else "accepted", event_id=outcome.event_id)


# ---- one item -------------------------------------------------------------------------------------
@router.post("/reviews", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_review(body: ReviewIn, service: ServiceDep, response: Response, principal: WriterDep,
                request: Request) -> Accepted:
    """Accept a review. The same ``(source, external_id)`` again answers 200 with the first event_id."""
    return _answer(response, service.accept(allowed(request, principal, submission_for("review", body, pseudonym_key=pseudonym_key(request)))))


@router.post("/mentions", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_mention(body: MentionIn, service: ServiceDep, response: Response, principal: WriterDep,
                request: Request) -> Accepted:
    """Accept a social-media mention."""
    return _answer(response, service.accept(allowed(request, principal, submission_for("mention", body, pseudonym_key=pseudonym_key(request)))))


@router.post("/feedback", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_complaint(body: ComplaintIn, service: ServiceDep, response: Response, principal: WriterDep,
                request: Request) -> Accepted:
    """The fast complaint form: text plus one of customer_id, e-mail or phone.

    An e-mail or phone number is never published: the customer is identified by a pseudonymous id
    derived from it.
    """
    return _answer(response, service.accept(allowed(request, principal, submission_for("complaint", body, pseudonym_key=pseudonym_key(request)))))


@router.post("/surveys", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_survey(body: SurveyIn, service: ServiceDep, response: Response, principal: WriterDep,
                request: Request) -> Accepted:
    """Accept a survey answer: ``nps`` (0-10), ``csat`` (1-5), the ``expected`` and ``perceived`` feeling at
    its touch point (1-5 each), a ``text`` and other ``questions``, at least one of them. With a text it is scored, alerted on and rewarded like a review (kind ``survey``);
    without one it goes to ``surveys.answered.v1``. The same answer again (its ``response_id``, else the
    survey and customer, else the same anonymous answer) answers 200 with the first event_id."""
    return _answer(response, service.accept(allowed(request, principal, submission_for("survey", body))))


@router.post("/suggestions", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_suggestion(body: SuggestionIn, service: ServiceDep, response: Response, principal: WriterDep,
                    request: Request) -> Accepted:
    """Accept a suggestion for the product or the service; once scored it also goes to the product team
    (``product.suggestions.v1``)."""
    return _answer(response, service.accept(allowed(request, principal, submission_for("suggestion", body))))


@router.post("/purchases", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_purchase(body: PurchaseIn, service: ServiceDep, response: Response, principal: WriterDep,
                request: Request) -> Accepted:
    """Record a purchase. The same ``order_id`` again answers 200 with the first event_id."""
    return _answer(response, service.accept(allowed(request, principal, submission_for("purchase", body, pseudonym_key=pseudonym_key(request)))))


@router.post("/returns", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_return(body: ReturnIn, service: ServiceDep, response: Response, principal: WriterDep,
                request: Request) -> Accepted:
    """Record a returned order."""
    return _answer(response, service.accept(allowed(request, principal, submission_for("return", body, pseudonym_key=pseudonym_key(request)))))


# ---- many items -----------------------------------------------------------------------------------
def accept_items(
    request: Request, service: IngestService, items: list[dict[str, Any]], response: Response, retry_after_s: int,
    principal: Principal | None,
) -> BatchResult:
    """``principal`` None: items a source's signed webhook pushed (the signature is the proof)."""
    results: list[ItemResult | None] = [None] * len(items)
    valid: list[tuple[int, Submission]] = []
    for index, raw in enumerate(items):
        parsed = parse_item(raw, pseudonym_key=pseudonym_key(request))
        if isinstance(parsed, Submission) and principal is not None and (reason := refusal(principal, parsed)):
            results[index] = ItemResult(index=index, status="rejected",
                                        errors=[{"loc": ["source"], "msg": reason, "type": "forbidden"}])
        elif isinstance(parsed, Submission) and (reason := too_large(request, parsed)):
            service.metrics.rejected.labels(reason="too_large").inc()
            results[index] = ItemResult(index=index, status="rejected",
                                        errors=[{"loc": ["text"], "msg": reason, "type": "too_large"}])
        elif isinstance(parsed, Submission):
            valid.append((index, parsed))
        else:
            results[index] = ItemResult(index=index, status="rejected", errors=parsed)
    rejected = sum(1 for r in results if r is not None)
    if rejected:
        service.metrics.rejected.labels(reason="validation").inc(rejected)
    for (index, _), outcome in zip(valid, service.accept_many([s for _, s in valid]), strict=True):
        if isinstance(outcome, DependencyUnavailable):
            results[index] = ItemResult(index=index, status="unavailable", errors=[{"msg": str(outcome)}])
        else:
            results[index] = ItemResult(index=index, status="duplicate" if outcome.duplicate else "accepted",
                                        event_id=outcome.event_id)
    final = [r for r in results if r is not None]
    counts = {s: sum(1 for r in final if r.status == s) for s in ("accepted", "duplicate", "rejected", "unavailable")}
    if counts["unavailable"]:
        response.headers["Retry-After"] = str(retry_after_s)
        if counts["unavailable"] == len(final):
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return BatchResult(accepted=counts["accepted"], duplicates=counts["duplicate"], rejected=counts["rejected"],
                       unavailable=counts["unavailable"], results=final)


@router.post("/batch", response_model=BatchResult, responses={
    code: RESPONSES[code] for code in (400, 401, 403, 413, 503)})
def post_batch(body: BatchIn, service: ServiceDep, settings: SettingsDep, response: Response,
               principal: WriterDep, request: Request) -> BatchResult:
    """Up to 1,000 mixed items with per-item results: accepted, duplicate, rejected (with the errors)
    or unavailable (retry those). 503 only when no item could be handed to the broker."""
    return accept_items(request, service, body.items, response, settings.retry_after_s, principal)


@webhook_router.post("/webhooks/{source}", response_model=BatchResult, tags=["ingest"], responses={
    401: {"description": "Missing, wrong or stale signature, or no webhook secret for this source."},
})
async def post_webhook(
    source: Annotated[Slug, Path()], request: Request, service: ServiceDep,
    settings: SettingsDep, response: Response,
) -> BatchResult:
    """A source pushes one item or ``{"items": [...]}`` of any common JSON shape, signed with the
    source's secret (Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``)."""
    secret = settings.webhook_secrets.get(source)
    if secret is None:
        # 401 like every other call it cannot authenticate: without a secret no signature can be right.
        service.metrics.rejected.labels(reason="unauthorized").inc()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            detail=f"webhook signature: no webhook is configured for source {source!r}")
    body = await request.body()
    try:
        verify(secret.get_secret_value(), request.headers, body, tolerance_s=settings.webhook_tolerance_s)
    except SignatureError as exc:
        service.metrics.rejected.labels(reason="unauthorized").inc()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=f"webhook signature: {exc}") from exc
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise HTTPException(422, detail=f"body is not JSON: {exc}") from exc
    items = webhook_items(source, payload)
    if items is None:
        raise HTTPException(422,
                            detail="expected a JSON object, a list of 1-1000 objects, or {\"items\": [...]}")
    return await run_in_threadpool(accept_items, request, service, items, response, settings.retry_after_s, None)


# ---- the right to be forgotten --------------------------------------------------------------------
@router.delete("/customers/{customer_id}", status_code=202, responses={
    code: RESPONSES[code] for code in (401, 403, 503)})
def forget_customer(customer_id: Annotated[str, Path(min_length=1, max_length=256)],
                    service: ServiceDep, _: Annotated[Principal, Depends(require("erasure"))]) -> dict[str, Any]:
    """Publish ``customer.erasure.v1`` (every service deletes or anonymises what it holds on the
    customer) and remove ingest's own records of them."""
    event = CustomerErasureRequested(customer_id=customer_id)
    [result] = service.publisher.publish_many([(CUSTOMER_ERASURE, event)])
    if isinstance(result, DependencyUnavailable):
        raise result
    removed = service.repo.forget_customer(customer_id)
    return {"status": "accepted", "event_id": str(event.event_id), "ingest_records_removed": removed}
