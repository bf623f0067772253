"""The ingest HTTP API: one route per kind of input, each answering 202, 200 (duplicate) or 503."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from feedback_shared.events import FeedbackReceived, OrderReturned, PurchaseRecorded, utcnow
from feedback_shared.topics import COMMERCE_EVENTS, FEEDBACK_RECEIVED
from ingest.schemas import Accepted, CommerceIn, ComplaintIn, MentionIn, PurchaseIn, ReturnIn, ReviewIn
from ingest.service import IngestService, normalise_text

router = APIRouter(prefix="/v1", tags=["ingest"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Accepted, "description": "Already accepted earlier: the first event_id."},
    401: {"description": "No API key."},
    403: {"description": "API key not accepted."},
    413: {"description": "Body too large."},
    503: {"description": "Broker or database unreachable; retry after Retry-After seconds."},
}


def get_service(request: Request) -> IngestService:
    service: IngestService = request.app.state.ingest_service
    return service


ServiceDep = Annotated[IngestService, Depends(get_service)]


def _answer(response: Response, event_id: uuid.UUID, duplicate: bool) -> Accepted:
    response.status_code = status.HTTP_200_OK if duplicate else status.HTTP_202_ACCEPTED
    return Accepted(status="duplicate" if duplicate else "accepted", event_id=event_id)


def _feedback(service: IngestService, response: Response, fields: dict[str, Any]) -> Accepted:
    text, original = normalise_text(fields.pop("text"))
    occurred_at = fields.pop("occurred_at", None) or utcnow()
    event = FeedbackReceived(text=text, text_original=original, occurred_at=occurred_at, **fields)
    outcome = service.accept(
        FEEDBACK_RECEIVED, event, source=event.source, external_id=event.external_id, kind=event.kind
    )
    return _answer(response, outcome.event_id, outcome.duplicate)


@router.post("/reviews", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_review(body: ReviewIn, service: ServiceDep, response: Response) -> Accepted:
    """Accept a review. The same ``(source, external_id)`` again answers 200 with the first event_id."""
    return _feedback(service, response, {"kind": "review", **body.model_dump(exclude_none=True)})


@router.post("/mentions", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_mention(body: MentionIn, service: ServiceDep, response: Response) -> Accepted:
    """Accept a social-media mention."""
    return _feedback(service, response, {"kind": "mention", **body.model_dump(exclude_none=True)})


@router.post("/feedback", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_complaint(body: ComplaintIn, service: ServiceDep, response: Response) -> Accepted:
    """The fast complaint form: text plus one of customer_id, e-mail or phone.

    An e-mail or phone number is never published: the customer is identified by a pseudonymous id
    derived from it.
    """
    contact = body.customer_id or str(body.email or body.phone)
    customer_id = body.customer_id or "anon-" + hashlib.sha256(contact.lower().encode()).hexdigest()[:20]
    external_id = body.external_id or hashlib.sha256(f"{contact}\x1f{body.text}".encode()).hexdigest()
    fields = body.model_dump(exclude_none=True, exclude={"email", "phone", "customer_id", "external_id"})
    return _feedback(service, response, {
        "kind": "complaint", "source": "web_form", "channel": "web_form", "is_public": False,
        "customer_id": customer_id, "external_id": external_id, **fields,
    })


def _commerce(service: IngestService, response: Response, body: CommerceIn, returned: bool) -> Accepted:
    fields = body.model_dump(exclude_none=True)
    fields["occurred_at"] = fields.get("occurred_at") or utcnow()
    event = OrderReturned(**fields) if returned else PurchaseRecorded(**fields)
    source = "commerce.return" if returned else "commerce.purchase"
    outcome = service.accept(
        COMMERCE_EVENTS, event, source=source, external_id=event.order_id, kind=event.event_type
    )
    return _answer(response, outcome.event_id, outcome.duplicate)


@router.post("/purchases", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_purchase(body: PurchaseIn, service: ServiceDep, response: Response) -> Accepted:
    """Record a purchase. The same ``order_id`` again answers 200 with the first event_id."""
    return _commerce(service, response, body, returned=False)


@router.post("/returns", status_code=202, response_model=Accepted, responses=RESPONSES)
def post_return(body: ReturnIn, service: ServiceDep, response: Response) -> Accepted:
    """Record a returned order."""
    return _commerce(service, response, body, returned=True)
