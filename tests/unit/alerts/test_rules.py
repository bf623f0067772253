from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from alerts.domain import Account, Case
from alerts.notifier import backoff, channel_of
from alerts.rules import PRIORITIES, notification_text, priority, route, should_alert
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


def test_a_survey_detractors_page_names_the_score_and_the_touch_point() -> None:
    from feedback_shared.events import SurveyScores

    answer = scored("neutral", 0.0, kind="survey", source="survey", touch_point="consultants",
                    journey_stage="purchase", survey=SurveyScores(survey_id="nps-q4", nps=3))
    title, body = notification_text(answer, priority_="normal", account=None, alert_id="a-2", inbox_url="http://inbox/")
    assert title == "[normal] Low survey score (NPS 3) from a customer"
    assert "Survey nps-q4: NPS 3/10 (detractor)" in body and "Touch point: consultants (purchase)" in body


def test_delivery_backoff_is_exponential_and_capped() -> None:
    assert [backoff(n, 2.0, 60.0) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (2, 4, 8)]
    assert backoff(20, 2.0, 60.0) == timedelta(seconds=60)
    assert channel_of("mailto://user:pw@example.com") == "mailto"
    assert channel_of("json://127.0.0.1:9/x") == "json"
    assert channel_of("garbage") == "unknown"


def test_packaged_policy_loads_and_typos_are_refused(tmp_path: Any) -> None:
    from importlib.resources import files
    from pathlib import Path

    import pytest
    from pydantic import ValidationError

    from alerts.rules import load_policy

    policy = load_policy(Path(str(files("alerts").joinpath("policy.toml"))))
    assert policy.sla.internal_ratio == 0.75
    assert policy.channel.callback_after_minutes == 15
    bad = tmp_path / "policy.toml"
    bad.write_text("cooldown_minuts = 5\n")
    with pytest.raises(ValidationError, match="cooldown_minuts"):
        load_policy(bad)


def test_sla_deadlines_promise_with_a_margin() -> None:
    from datetime import UTC, datetime

    from alerts.rules import AlertPolicy, SlaPolicy, sla_deadlines

    opened = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    policy = AlertPolicy(sla=SlaPolicy(promise_minutes={"critical": 60, "high": 240, "normal": 1440, "low": 2880},
                                       channel_promise_minutes={"social": 120}))
    target, promise = sla_deadlines("critical", "email", opened, policy)
    assert (promise - opened, target - opened) == (timedelta(minutes=60), timedelta(minutes=45))
    target, promise = sla_deadlines("normal", "social", opened, policy)  # the channel's promise is sooner
    assert promise - opened == timedelta(minutes=120)


def test_sla_due_escalates_and_breaches_once_and_never_when_resolved() -> None:
    from datetime import UTC, datetime

    from alerts.rules import sla_due

    t = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    case = Case(_id="a-1", csm_id="csm-1", priority="high", internal_target=t,
                promised_by=t + timedelta(minutes=15), created_at=t, updated_at=t)
    assert sla_due(case, t - timedelta(seconds=1)) == (False, False)
    assert sla_due(case, t) == (True, False)
    assert sla_due(case.model_copy(update={"escalated_at": t}), t + timedelta(minutes=16)) == (False, True)
    assert sla_due(case.model_copy(update={"status": "resolved"}), t + timedelta(hours=1)) == (False, False)


@pytest.mark.parametrize(
    ("overrides", "queue_minutes", "preferred", "channel"),
    [
        ({"is_public": True, "kind": "mention", "anger": 0.9}, 0, None, "social_reply"),
        ({"anger": 0.8}, 0, None, "phone"),
        ({"urgency": 0.7}, 15, None, "phone"),      # 15 minutes: still the phone
        ({"urgency": 0.7}, 16, None, "callback"),   # 16 minutes: offer a callback instead of the queue
        ({}, 30, "chat", "chat"),
        ({}, 0, None, "email"),
    ],
)
def test_recommended_channel_decision_table(overrides: dict[str, Any], queue_minutes: float,
                                            preferred: str | None, channel: str) -> None:
    from alerts.rules import AlertPolicy, ChannelPolicy, recommended_channel

    policy = AlertPolicy(channel=ChannelPolicy(callback_after_minutes=15, phone_queue_wait_minutes=queue_minutes))
    account = Account("c-1", preferred_channel=preferred)
    assert recommended_channel(scored(**overrides), account, policy) == channel
