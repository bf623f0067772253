from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from alerts.notifier import backoff, channel_of
from alerts.rules import PRIORITIES, Account, notification_text, priority, route, should_alert
from feedback_shared.events import FeedbackScored, NeedScore, SentimentResult


def scored(label: str = "negative", score: float = -0.8, **overrides: Any) -> FeedbackScored:
    fields: dict[str, Any] = {
        "source": "google", "kind": "review", "external_id": "r-1", "customer_id": "c-1",
        "text": "Broken on arrival. Call me at +1 415 555 0199 or jane@example.com",
        "feedback_event_id": uuid.uuid4(), "model_version": "test", "language": "en",
        "sentiment": SentimentResult(label=label, score=score,  # type: ignore[arg-type]
                                     probabilities={"negative": 0.9, "neutral": 0.05, "positive": 0.05},
                                     confidence=0.9),
        "needs": [NeedScore(need="reliability", score=0.7)],
    }
    fields.update(overrides)
    return FeedbackScored(**fields)


def rank(p: str) -> int:
    return PRIORITIES.index(p)  # type: ignore[arg-type]


def test_one_negative_item_is_enough_and_only_negatives_alert() -> None:
    assert should_alert(scored())
    assert not should_alert(scored(label="neutral", score=0.0))
    assert not should_alert(scored(label="positive", score=0.9))


def test_priority_rises_with_visibility_anger_recurrence_and_tier() -> None:
    base = rank(priority(scored(), tier=None, earlier_cases=0))
    assert rank(priority(scored(is_public=True), tier=None, earlier_cases=0)) > base
    assert rank(priority(scored(anger=0.9), tier=None, earlier_cases=0)) > base
    assert rank(priority(scored(), tier=None, earlier_cases=2)) > base
    assert rank(priority(scored(), tier="gold", earlier_cases=0)) > base
    everything = priority(scored(is_public=True, anger=0.9, rating=1), tier="gold", earlier_cases=1)
    assert everything == "critical"


def test_routing_falls_back_to_the_queue() -> None:
    assert route(Account("c-1", csm_id="csm-7"), "fallback") == "csm-7"
    assert route(Account("c-1"), "fallback") == "fallback"
    assert route(None, "fallback") == "fallback"


def test_notification_has_context_and_playbook_but_no_contact_details() -> None:
    title, body = notification_text(
        scored(), priority_="high", account=Account("c-1", tier="gold", preferred_name="Ms. Aliyeva"),
        alert_id="a-1", inbox_url="http://inbox/",
    )
    assert title == "[high] Negative review from Ms. Aliyeva on google"
    assert "reliability" in body and "gold" in body and "a-1" in body
    assert "calm down" in body and "two genuine options" in body
    assert "jane@example.com" not in body and "555 0199" not in body


def test_delivery_backoff_is_exponential_and_capped() -> None:
    assert [backoff(n, 2.0, 60.0) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (2, 4, 8)]
    assert backoff(20, 2.0, 60.0) == timedelta(seconds=60)
    assert channel_of("mailto://user:pw@example.com") == "mailto"
    assert channel_of("json://127.0.0.1:9/x") == "json"
    assert channel_of("garbage") == "unknown"
