"""The ingest HTTP API: one route per kind of input, a batch route, signed webhooks and erasure."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError

from feedback_shared.adapters import generic_item
from feedback_shared.errors import DependencyUnavailable
from feedback_shared.events import (
    CustomerErasureRequested,
    FeedbackReceived,
    OrderReturned,
    PurchaseRecorded,
    Slug,
    utcnow,
)
from feedback_shared.topics import COMMERCE_EVENTS, CUSTOMER_ERASURE, FEEDBACK_RECEIVED
from feedback_shared.webhooks import SignatureError, verify
from ingest.config import Settings
from ingest.schemas import (
    Accepted,
    BatchIn,
    BatchResult,
    CommerceIn,
    ComplaintIn,
    ItemResult,
    MentionIn,
    PurchaseIn,
    ReturnIn,
    ReviewIn,
)
from ingest.service import IngestService, Outcome, Submission, normalise_text

router = APIRouter(prefix="/v1", tags=["ingest"])
webhook_router = APIRouter(prefix="/v1", tags=["ingest"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Accepted, "description": "Already accepted earlier: the first event_id."},
    401: {"description": "No API key."},
    403: {"description": "API key not accepted."},
    413: {"description": "Body too large."},
    503: {"description": "Broker or database unreachable; retry after Retry-After seconds."},
}
ITEM_MODELS: dict[str, type[BaseModel]] = {
    "review": ReviewIn, "mention": MentionIn, "complaint": ComplaintIn, "purchase": PurchaseIn, "return": ReturnIn,
}
SOCIAL_SOURCES = frozenset({"x", "twitter", "instagram", "facebook", "tiktok", "youtube", "reddit", "mastodon"})


def get_service(request: Request) -> IngestService:
    service: IngestService = request.app.state.ingest_service
    return service


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


ServiceDep = Annotated[IngestService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


# ---- mapping requests to events -------------------------------------------------------------------
def _feedback_submission(fields: dict[str, Any]) -> Submission:
    text, original = normalise_text(fields.pop("text"))
    occurred_at = fields.pop("occurred_at", None) or utcnow()
    event = FeedbackReceived(text=text, text_original=original, occurred_at=occurred_at, **fields)
    return Submission(FEEDBACK_RECEIVED, event, event.source, event.external_id, event.kind)


def _complaint_fields(body: ComplaintIn) -> dict[str, Any]:
    """The complaint form's contact detail is never published: a pseudonymous id stands for it."""
    contact = body.customer_id or str(body.email or body.phone)
    customer_id = body.customer_id or "anon-" + hashlib.sha256(contact.lower().encode()).hexdigest()[:20]
    external_id = body.external_id or hashlib.sha256(f"{contact}\x1f{body.text}".encode()).hexdigest()
    fields = body.model_dump(exclude_none=True, exclude={"email", "phone", "customer_id", "external_id"})
    return {"kind": "complaint", "source": "web_form", "channel": "web_form", "is_public": False,
            "customer_id": customer_id, "external_id": external_id, **fields}


def _commerce_submission(body: CommerceIn, returned: bool) -> Submission:
    fields = body.model_dump(exclude_none=True)
    fields["occurred_at"] = fields.get("occurred_at") or utcnow()
    event = OrderReturned(**fields) if returned else PurchaseRecorded(**fields)
    source = "commerce.return" if returned else "commerce.purchase"
    return Submission(COMMERCE_EVENTS, event, source, event.order_id, event.event_type)


def submission_for(item_type: str, body: BaseModel) -> Submission:
    if isinstance(body, ComplaintIn):
        return _feedback_submission(_complaint_fields(body))
    if isinstance(body, CommerceIn):
        return _commerce_submission(body, returned=isinstance(body, ReturnIn))
    return _feedback_submission({"kind": item_type, **body.model_dump(exclude_none=True)})


def _answer(response: Response, outcome: Outcome) -> Accepted:
    response.status_code = status.HTTP_200_OK if outcome.duplicate else status.HTTP_202_ACCEPTED
    return Accepted(status="duplicate" if outcome.duplicate else "accepted", event_id=outcome.event_id)


# ---- one item -------------------------------------------------------------------------------------
@router.post("/reviews", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_review(body: ReviewIn, service: ServiceDep, response: Response) -> Accepted:
    """Accept a review. The same ``(source, external_id)`` again answers 200 with the first event_id."""
    return _answer(response, service.accept(submission_for("review", body)))


@router.post("/mentions", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_mention(body: MentionIn, service: ServiceDep, response: Response) -> Accepted:
    """Accept a social-media mention."""
    return _answer(response, service.accept(submission_for("mention", body)))


@router.post("/feedback", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_complaint(body: ComplaintIn, service: ServiceDep, response: Response) -> Accepted:
    """The fast complaint form: text plus one of customer_id, e-mail or phone.

    An e-mail or phone number is never published: the customer is identified by a pseudonymous id
    derived from it.
    """
    return _answer(response, service.accept(submission_for("complaint", body)))


@router.post("/purchases", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_purchase(body: PurchaseIn, service: ServiceDep, response: Response) -> Accepted:
    """Record a purchase. The same ``order_id`` again answers 200 with the first event_id."""
    return _answer(response, service.accept(submission_for("purchase", body)))


@router.post("/returns", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_return(body: ReturnIn, service: ServiceDep, response: Response) -> Accepted:
    """Record a returned order."""
    return _answer(response, service.accept(submission_for("return", body)))


# ---- many items -----------------------------------------------------------------------------------
def accept_items(
    service: IngestService, items: list[dict[str, Any]], response: Response, retry_after_s: int
) -> BatchResult:
    results: list[ItemResult | None] = [None] * len(items)
    valid: list[tuple[int, Submission]] = []
    for index, raw in enumerate(items):
        item = dict(raw)
        item_type = str(item.pop("type", ""))
        model = ITEM_MODELS.get(item_type)
        if model is None:
            results[index] = ItemResult(index=index, status="rejected", errors=[{
                "loc": ["type"], "msg": f"type must be one of {', '.join(ITEM_MODELS)}", "type": "enum"}])
            continue
        try:
            valid.append((index, submission_for(item_type, model.model_validate(item))))
        except DependencyUnavailable:
            raise
        except ValidationError as exc:
            errors = exc.errors(include_input=False, include_url=False, include_context=False)
            results[index] = ItemResult(index=index, status="rejected", errors=json.loads(json.dumps(errors, default=str)))
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


@router.post("/batch", response_model=BatchResult, responses={503: RESPONSES[503], 413: RESPONSES[413]})
def post_batch(body: BatchIn, service: ServiceDep, settings: SettingsDep, response: Response) -> BatchResult:
    """Up to 1,000 mixed items with per-item results: accepted, duplicate, rejected (with the errors)
    or unavailable (retry those). 503 only when no item could be handed to the broker."""
    return accept_items(service, body.items, response, settings.retry_after_s)


@webhook_router.post("/webhooks/{source}", response_model=BatchResult, tags=["ingest"], responses={
    401: {"description": "Missing, wrong or stale signature."}, 404: {"description": "No webhook for this source."},
})
async def post_webhook(
    source: Annotated[Slug, Path()], request: Request, service: ServiceDep,
    settings: SettingsDep, response: Response,
) -> BatchResult:
    """A source pushes one item or ``{"items": [...]}`` of any common JSON shape, signed with the
    source's secret (Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``)."""
    secret = settings.webhook_secrets.get(source)
    if secret is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no webhook is configured for source {source!r}")
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
    raw_items = payload.get("items") if isinstance(payload, dict) and "items" in payload else payload
    raw_items = raw_items if isinstance(raw_items, list) else [raw_items]
    if not raw_items or len(raw_items) > 1000 or not all(isinstance(i, dict) for i in raw_items):
        raise HTTPException(422,
                            detail="expected a JSON object, a list of 1-1000 objects, or {\"items\": [...]}")
    default_kind = "mention" if source in SOCIAL_SOURCES else "review"
    items = [{**generic_item(i, default_kind=default_kind), "source": source} for i in raw_items]
    return await run_in_threadpool(accept_items, service, items, response, settings.retry_after_s)


# ---- the right to be forgotten --------------------------------------------------------------------
@router.delete("/customers/{customer_id}", status_code=202, responses=RESPONSES)
def forget_customer(customer_id: Annotated[str, Path(min_length=1, max_length=256)],
                    service: ServiceDep) -> dict[str, Any]:
    """Publish ``customer.erasure.v1`` (every service deletes or anonymises what it holds on the
    customer) and remove ingest's own records of them."""
    event = CustomerErasureRequested(customer_id=customer_id)
    [result] = service.publisher.publish_many([(CUSTOMER_ERASURE, event)])
    if isinstance(result, DependencyUnavailable):
        raise result
    removed = service.repo.forget_customer(customer_id)
    return {"status": "accepted", "event_id": str(event.event_id), "ingest_records_removed": removed}
