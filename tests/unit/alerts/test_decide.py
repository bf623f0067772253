"""Alerts' pure core: a batch and the state it touches in, decisions out (no database, no fakes needed)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.decide import BatchState, Routing, crisis_id_at, decide, decide_crisis
from alerts.domain import Account, Case, Csm
from alerts.rules import AlertPolicy, SpikePolicy
from feedback_shared.events import FeedbackScored, NeedScore, SentimentResult, derived_id

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
ROUTING = Routing(fallback_csm_id="queue", fallback_notify=("json://127.0.0.1:9/queue",),
                  manager_notify=("json://127.0.0.1:9/manager",))
POLICY = AlertPolicy(spike=SpikePolicy(window_minutes=10, threshold=3))


def negative(customer: str | None = "c-1", *, public: bool = False, thread: str | None = None,
             ingested_at: datetime | None = None, label: str = "negative", **overrides: Any) -> FeedbackScored:
    fields: dict[str, Any] = {
        "source": "x" if public else "email", "kind": "mention" if public else "complaint",
        "external_id": uuid.uuid4().hex, "customer_id": customer, "thread_id": thread, "is_public": public,
        "text": "It broke again and nobody answers.", "feedback_event_id": uuid.uuid4(), "model_version": "t",
        "language": "en", "ingested_at": ingested_at or NOW - timedelta(seconds=1),
        "sentiment": SentimentResult(label=label, score=-0.8 if label == "negative" else 0.6,  # type: ignore[arg-type]
                                     probabilities={"negative": 0.9, "neutral": 0.05, "positive": 0.05},
                                     confidence=0.9),
        "needs": [NeedScore(need="reliability", score=0.8)],
    }
    fields.update(overrides)
    return FeedbackScored(**fields)


def open_case(case_id: str, customer: str | None = "c-1", **fields: Any) -> Case:
    return Case.model_validate({"_id": case_id, "customer_id": customer, "csm_id": "csm-a", "priority": "normal",
                                "created_at": NOW - timedelta(hours=1), "updated_at": NOW - timedelta(hours=1),
                                **fields})


def alert_id_of(item: FeedbackScored) -> str:
    return str(derived_id("alert", str(item.feedback_event_id)))


def test_a_negative_from_a_customer_without_a_case_opens_one_and_pages_their_csm() -> None:
    item = negative()
    state = BatchState(accounts={"c-1": Account("c-1", csm_id="csm-a", preferred_name="Ms. Aliyeva")},
                       csms={"csm-a": Csm("csm-a", ("json://127.0.0.1:9/a", "mailto://a@example.com"))})
    out = decide([item], state, POLICY, ROUTING, NOW)
    [case] = out.new_cases.values()
    assert (case.id, case.csm_id, case.status, case.event_count, case.paged) == (alert_id_of(item), "csm-a", "open", 1,
                                                                                 True)
    assert case.promised_by is not None and case.internal_target is not None and case.internal_target < case.promised_by
    assert out.links == [(str(item.feedback_event_id), case.id)]
    assert sorted(d.url for d in out.deliveries) == ["json://127.0.0.1:9/a", "mailto://a@example.com"]
    assert all("Ms. Aliyeva" in d.title for d in out.deliveries)
    assert [e.event_type for e in out.events] == ["alert.raised"]


def test_only_negatives_count_and_a_customer_without_an_account_goes_to_the_queue() -> None:
    out = decide([negative(label="positive"), negative("c-2")], BatchState(), POLICY, ROUTING, NOW)
    [case] = out.new_cases.values()
    assert case.csm_id == "queue" and [d.url for d in out.deliveries] == ["json://127.0.0.1:9/queue"]


def test_more_negatives_while_a_case_is_open_update_it_without_paging_again() -> None:
    existing = open_case("case-1")
    item = negative()
    out = decide([item], BatchState(customer_cases={"c-1": [existing]}), POLICY, ROUTING, NOW)
    assert out.new_cases == {} and out.deliveries == []
    [update] = out.updates
    assert (update.alert_id, update.feedback_event_id) == ("case-1", str(item.feedback_event_id))
    [event] = out.events
    assert (event.event_type, event.alert_id, event.event_count) == ("alert.updated", "case-1", 2)
    assert out.added_to_open == 1


def test_the_thread_newer_than_the_customer_case_takes_the_item() -> None:
    mine = open_case("mine", created_at=NOW - timedelta(hours=2))
    thread = open_case("thread", customer=None, thread_id="t-1", created_at=NOW - timedelta(minutes=5))
    out = decide([negative(thread="t-1")], BatchState(customer_cases={"c-1": [mine]}, thread_cases={"t-1": thread}),
                 POLICY, ROUTING, NOW)
    assert [u.alert_id for u in out.updates] == ["thread"]


def test_two_items_of_one_customer_in_one_batch_make_one_case_with_both() -> None:
    first, second = negative(), negative()
    out = decide([first, second, first], BatchState(), POLICY, ROUTING, NOW)  # ``first`` twice: decided once
    [case] = out.new_cases.values()
    assert case.id == alert_id_of(first) and case.event_count == 2
    assert case.feedback_event_ids == [str(first.feedback_event_id), str(second.feedback_event_id)]
    assert out.updates == []  # the insert carries both
    assert [e.event_type for e in out.events] == ["alert.raised", "alert.updated"]
    assert len(out.deliveries) == 1  # one page for the case


def test_a_redelivered_item_decides_the_same_ids_and_completes_a_half_written_case() -> None:
    item = negative()
    first = decide([item], BatchState(), POLICY, ROUTING, NOW)
    [case] = first.new_cases.values()
    # Redelivered after the case was written: the case is found through the item's link.
    again = decide([item], BatchState(cases_by_event={str(item.feedback_event_id): case}), POLICY, ROUTING,
                   NOW + timedelta(seconds=30))
    assert again.new_cases == {} and again.updates == []
    assert [d.delivery_id for d in again.deliveries] == [d.delivery_id for d in first.deliveries]
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]
    # An item linked to a case that the worker had not yet updated: the redelivery adds it.
    other = negative()
    linked = decide([other], BatchState(cases_by_event={str(other.feedback_event_id): case}), POLICY, ROUTING, NOW)
    assert [(u.alert_id, u.feedback_event_id) for u in linked.updates] == [(case.id, str(other.feedback_event_id))]
    assert linked.deliveries == []  # not the case's opening item: no page
    assert [e.event_type for e in linked.events] == ["alert.updated"]


def test_a_customer_paged_within_the_cool_down_gets_a_case_but_no_page() -> None:
    def resolved(minutes_ago: float, paged: bool = True) -> Case:
        return open_case(f"old-{minutes_ago}", status="resolved", paged=paged,
                         created_at=NOW - timedelta(minutes=minutes_ago))

    recently = BatchState(customer_cases={"c-1": [resolved(POLICY.cooldown_minutes - 1)]})
    out = decide([negative()], recently, POLICY, ROUTING, NOW)
    [case] = out.new_cases.values()
    assert case.paged is False and out.deliveries == [] and case.earlier_cases == 1
    long_ago = BatchState(customer_cases={"c-1": [resolved(POLICY.cooldown_minutes + 1)]})
    assert decide([negative()], long_ago, POLICY, ROUTING, NOW).deliveries
    # A recent case that was itself not paged (cooling) does not start the clock again.
    unpaged = BatchState(customer_cases={"c-1": [resolved(1, paged=False), resolved(POLICY.cooldown_minutes + 1)]})
    assert decide([negative()], unpaged, POLICY, ROUTING, NOW).deliveries


def test_a_page_in_this_batch_starts_the_cool_down_for_the_next_case() -> None:
    first, second = negative("c-1", thread="t-1"), negative("c-1", thread="t-2")
    # The first opens a case and pages; the case is resolved at once, so the second opens a case of its
    # own, but within the cool-down of the first page.
    state = BatchState()
    out = decide([first], state, POLICY, ROUTING, NOW)
    [case] = out.new_cases.values()
    later = decide([second], BatchState(customer_cases={"c-1": [case.model_copy(update={"status": "resolved"})]}),
                   POLICY, ROUTING, NOW + timedelta(minutes=1))
    [new] = later.new_cases.values()
    assert new.paged is False and new.earlier_cases == 1 and later.deliveries == []


def test_tier_and_earlier_cases_raise_priority() -> None:
    plain = decide([negative("c-plain")], BatchState(), POLICY, ROUTING, NOW)
    gold = decide([negative("c-gold")], BatchState(accounts={"c-gold": Account("c-gold", tier="gold")}), POLICY,
                  ROUTING, NOW)
    order = ["low", "normal", "high", "critical"]
    [p], [g] = plain.new_cases.values(), gold.new_cases.values()
    assert order.index(g.priority) > order.index(p.priority)


def test_items_from_before_an_erasure_open_no_case_and_join_none() -> None:
    erased_at = NOW - timedelta(minutes=1)
    before, after = negative(ingested_at=erased_at - timedelta(seconds=1)), negative(ingested_at=NOW)
    state = BatchState(accounts={"c-1": Account("c-1", erased_at=erased_at)})
    out = decide([before, after], state, POLICY, ROUTING, NOW)
    assert out.skipped_erased == [before]
    [case] = out.new_cases.values()
    assert case.id == alert_id_of(after) and case.customer_erased_at == erased_at
    # A late item from before the erasure does not join the case opened after it.
    late = negative(ingested_at=erased_at - timedelta(seconds=5))
    again = decide([late], BatchState(customer_cases={"c-1": [case]}, accounts=state.accounts), POLICY, ROUTING, NOW)
    assert again.skipped_erased == [late] and again.updates == [] and again.events == []
    # A redelivery into a case erased since brings nothing back.
    erased_case = case.model_copy(update={"erased_at": NOW, "latest": None})
    redelivered = decide([after], BatchState(cases_by_event={str(after.feedback_event_id): erased_case}), POLICY,
                         ROUTING, NOW)
    assert redelivered.skipped_erased == [after] and redelivered.deliveries == [] and redelivered.events == []


def test_public_negatives_linked_to_a_case_are_offered_for_the_spike_count() -> None:
    public, private = negative(None, public=True), negative("c-2")
    out = decide([public, private, public], BatchState(), POLICY, ROUTING, NOW)
    assert out.public == [public]  # once, and never a private complaint
    # An erased customer's late item is linked to no case, so it is not offered either.
    erased = BatchState(accounts={"c-9": Account("c-9", erased_at=NOW)})
    assert decide([negative("c-9", public=True)], erased, POLICY, ROUTING, NOW).public == []


def test_a_crisis_when_the_window_passes_the_threshold() -> None:
    latest = negative(None, public=True, text="Down again #2")
    assert decide_crisis(latest, 3, {}, POLICY, ROUTING, NOW) is None
    crisis = decide_crisis(latest, 4, {"queue": Csm("queue", ("json://127.0.0.1:9/q2",))}, POLICY, ROUTING, NOW)
    assert crisis is not None
    case = crisis.case
    assert (case.id, case.kind, case.priority, case.event_count) == (crisis_id_at(NOW, POLICY), "crisis", "critical", 4)
    assert case.latest is not None and "Down again #2" in case.latest.text
    assert sorted(d.url for d in crisis.deliveries) == ["json://127.0.0.1:9/manager", "json://127.0.0.1:9/q2"]
    assert [e.event_type for e in crisis.events] == ["alert.raised"]
    # One crisis per window: the same id all window long, a new one in the next.
    assert decide_crisis(latest, 9, {}, POLICY, ROUTING, NOW + timedelta(minutes=1)).case.id == case.id  # type: ignore[union-attr]
    assert crisis_id_at(NOW + timedelta(minutes=10), POLICY) != case.id


def test_webhook_calls_announce_every_event_when_configured() -> None:
    routing = Routing(fallback_csm_id="queue", webhook_url="https://hooks.example.com/alerts")
    out = decide([negative(), negative()], BatchState(), POLICY, routing, NOW)
    hooks = [d for d in out.deliveries if d.kind == "webhook"]
    assert [h.msg_id for h in hooks] == [str(e.event_id) for e in out.events]
    assert all(h.payload and '"alert_id"' in h.payload for h in hooks)


def test_a_case_lists_the_needs_the_writer_is_negative_about_first() -> None:
    mixed = negative(needs=[NeedScore(need="experience", score=0.9, sentiment="positive"),
                            NeedScore(need="price", score=0.6, sentiment="negative"),
                            NeedScore(need="empathy", score=0.7, sentiment="negative")])
    out = decide([mixed], BatchState(), POLICY, ROUTING, NOW)
    [case] = out.new_cases.values()
    assert case.needs == ["empathy", "price", "experience"]
    [page] = out.deliveries
    assert "needs: empathy (negative), price (negative), experience (positive)" in page.body
