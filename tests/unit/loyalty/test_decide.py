"""Loyalty's pure core: a batch and the state it touches in, decisions out."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from feedback_shared.events import (
    CustomerThanked,
    FeedbackScored,
    FollowUpDue,
    OrderLine,
    OrderReturned,
    PointsAwarded,
    PointsReversed,
    PurchaseRecorded,
    SentimentResult,
    TierChanged,
    derived_id,
)
from loyalty.decide import BatchState, Decisions, decide, entry_id, pseudonym
from loyalty.domain import Account, LedgerEntry, Profile, PurchaseRecord, ReviewClaim
from loyalty.points import PointsRules

RULES = PointsRules(surprise_probability=0, review_bonus=25)
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
SENTIMENT = SentimentResult(label="positive", score=0.8, confidence=0.9,
                            probabilities={"negative": 0.05, "neutral": 0.05, "positive": 0.9})


def buy(order: str, amount: str, customer: str = "c-1", at: datetime = T0, skus: tuple[str, ...] = ()) -> PurchaseRecorded:
    return PurchaseRecorded(order_id=order, customer_id=customer, amount=Decimal(amount), currency="EUR",
                            occurred_at=at, items=[OrderLine(sku=s) for s in skus] or None)


def give_back(order: str, customer: str = "c-1", at: datetime = T0) -> OrderReturned:
    return OrderReturned(order_id=order, customer_id=customer, amount=Decimal(1), currency="EUR", occurred_at=at)


def review(customer: str | None = "c-1", order: str | None = None, product: str | None = None,
           at: datetime = T0) -> FeedbackScored:
    return FeedbackScored(source="google", kind="review", external_id=f"r-{uuid.uuid4()}", customer_id=customer,
                          order_id=order, product_id=product, text="ok", feedback_event_id=uuid.uuid4(),
                          sentiment=SENTIMENT, model_version="t", occurred_at=at, ingested_at=at)


def record(order: str, customer: str = "c-1", ordinal: int = 1, amount: str = "10",
           skus: tuple[str, ...] = ()) -> PurchaseRecord:
    return PurchaseRecord(order_id=order, customer_id=customer, ordinal=ordinal, amount=Decimal(amount),
                          currency="EUR", at=T0, event_id="e", skus=skus)


def account(customer: str = "c-1", balance: int = 0, **fields: object) -> Account:
    return Account(customer, balance=balance, stored_balance=balance, exists=True, **fields)  # type: ignore[arg-type]


def rules_of(decisions: Decisions) -> list[tuple[str, int]]:
    return [(e.rule, e.points) for e in decisions.entries]


# ---- purchases: dedupe and fold --------------------------------------------------------------------
def test_the_same_order_twice_in_a_batch_is_recorded_and_credited_once() -> None:
    state = BatchState(accounts={"c-1": account()}, purchase_counts={"c-1": 1})
    out = decide([buy("o-2", "40"), buy("o-2", "40")], state, RULES, T0)
    assert [p.ordinal for p in out.purchases] == [2]
    assert rules_of(out) == [("repeat_purchase", 40)]
    [change] = out.accounts
    assert change.points == 40
    assert len([e for e in out.points if isinstance(e, PointsAwarded)]) == 1  # announced once


def test_purchases_of_one_customer_in_a_batch_take_their_ordinals_in_order() -> None:
    out = decide([buy("o-1", "10"), buy("o-2", "20"), buy("o-3", "30", customer="c-2")], BatchState(), RULES, T0)
    assert [(p.order_id, p.ordinal) for p in out.purchases] == [("o-1", 1), ("o-2", 2), ("o-3", 1)]
    assert rules_of(out) == [("repeat_purchase", 20)]  # the first purchase earns nothing by default
    assert [n.order_id for n in out.notifications if isinstance(n, FollowUpDue)] == ["o-1", "o-2", "o-3"]


def test_an_order_on_record_keeps_its_first_ordinal_and_amount() -> None:
    state = BatchState(accounts={"c-1": account()}, purchases={"o-2": record("o-2", ordinal=2, amount="15")},
                       purchase_counts={"c-1": 2})
    out = decide([buy("o-2", "999")], state, RULES, T0)  # a resend with other details
    assert out.purchases == [] and rules_of(out) == [("repeat_purchase", 15)]


def test_entries_on_the_ledger_are_not_written_again_but_announced_again() -> None:
    source = str(derived_id("purchase", "o-2"))
    applied = LedgerEntry(entry_id(source, "repeat_purchase"), "c-1", source, "repeat_purchase", 15, T0, "o-2")
    state = BatchState(accounts={"c-1": account(balance=15, tier="bronze", tier_cause="x")},
                       purchases={"o-2": record("o-2", ordinal=2, amount="15")}, purchase_counts={"c-1": 2},
                       ledger={applied.entry_id: applied}, earned={"c-1": 15})
    first = decide([buy("o-2", "15")], state, RULES, T0)
    assert first.entries == [] and first.purchases == [] and first.accounts == []
    [award] = [e for e in first.points if isinstance(e, PointsAwarded)]
    assert (award.entry_id, award.balance) == (applied.entry_id, 15)
    again = decide([buy("o-2", "15")], state, RULES, T0)  # a resend under a new event id: the same ids
    assert [e.event_id for e in again.points] == [e.event_id for e in first.points]


# ---- returns ---------------------------------------------------------------------------------------
def test_a_return_after_its_purchase_in_the_same_batch_takes_back_what_it_earned() -> None:
    state = BatchState(accounts={"c-1": account(balance=100)}, purchase_counts={"c-1": 3})
    out = decide([buy("o-9", "60"), give_back("o-9")], state, RULES, T0)
    assert rules_of(out) == [("repeat_purchase", 60), ("return_reversal", -60)]
    assert [c.points for c in out.accounts] == [0]
    [reversed_] = [e for e in out.points if isinstance(e, PointsReversed)]
    assert reversed_.balance == 100


def test_a_return_takes_back_at_most_the_balance_with_clamp_and_all_with_allow() -> None:
    source = str(derived_id("purchase", "o-1"))
    earned = LedgerEntry(entry_id(source, "repeat_purchase"), "c-1", source, "repeat_purchase", 80, T0, "o-1")
    state = BatchState(accounts={"c-1": account(balance=30)}, ledger={earned.entry_id: earned})
    assert rules_of(decide([give_back("o-1")], state, RULES, T0)) == [("return_reversal", -30)]
    allow = RULES.model_copy(update={"negative_balance": "allow"})
    assert rules_of(decide([give_back("o-1")], state, allow, T0)) == [("return_reversal", -80)]
    # Returned twice in one batch: taken back once.
    assert rules_of(decide([give_back("o-1"), give_back("o-1")], state, RULES, T0)) == [("return_reversal", -30)]


# ---- tiers -----------------------------------------------------------------------------------------
def test_a_new_customer_lifted_by_their_first_batch_moves_up_from_the_bottom_tier() -> None:
    """Both purchases in one batch (how a consumer's batches fall is not the customer's business): the
    announcement still says where they came from, the bottom tier, not nothing."""
    out = decide([buy("o-1", "20"), buy("o-2", "600")], BatchState(), RULES, T0)
    [change] = [e for e in out.points if isinstance(e, TierChanged)]
    assert (change.previous_tier, change.tier) == ("bronze", "silver")


def test_the_tier_is_computed_once_per_customer_from_where_the_batch_leaves_them() -> None:
    state = BatchState(accounts={"c-1": account(balance=400, tier="bronze")}, purchase_counts={"c-1": 5},
                       earned={"c-1": 400})
    batch = [buy("o-a", "150"), buy("o-b", "1500"), buy("o-c", "10")]
    out = decide(batch, state, RULES, T0)
    [change] = [e for e in out.points if isinstance(e, TierChanged)]
    assert (change.previous_tier, change.tier, change.points_earned) == ("bronze", "gold", 2060)
    assert change.event_id == derived_id("tier", "c-1", batch[-1].event_id, "gold")  # the batch's last item
    [moved] = out.accounts
    assert (moved.tier, moved.tier_previous, moved.tier_cause) == ("gold", "bronze", str(batch[-1].event_id))


def test_a_tier_change_written_by_an_earlier_delivery_is_announced_again_and_joining_at_the_bottom_never() -> None:
    batch = [buy("o-1", "10")]
    out = decide(batch, BatchState(), RULES, T0)
    assert [a.tier for a in out.accounts] == ["bronze"]
    assert not [e for e in out.points if isinstance(e, TierChanged)]  # joined at the bottom
    cause = buy("o-2", "600")
    written = account(balance=600, tier="silver", tier_previous="bronze", tier_cause=str(cause.event_id))
    state = BatchState(accounts={"c-1": written}, purchases={"o-2": record("o-2", ordinal=2, amount="600")},
                       earned={"c-1": 600},
                       ledger={(e := LedgerEntry(entry_id(str(derived_id("purchase", "o-2")), "repeat_purchase"),
                                                 "c-1", str(derived_id("purchase", "o-2")), "repeat_purchase", 600,
                                                 T0, "o-2")).entry_id: e})
    again = decide([cause], state, RULES, T0)
    [change] = [e for e in again.points if isinstance(e, TierChanged)]
    assert (change.previous_tier, change.tier) == ("bronze", "silver") and again.accounts == []


# ---- the erasure fence -----------------------------------------------------------------------------
def test_events_from_before_an_erasure_go_to_the_pseudonym_and_announce_nothing() -> None:
    erased = T0 + timedelta(minutes=5)
    hidden = pseudonym("c-1")
    state = BatchState(accounts={"c-1": Account("c-1", erased_at=erased)}, purchase_counts={hidden: 1})
    late = buy("o-2", "40").model_copy(update={"ingested_at": erased - timedelta(seconds=1)})
    late_review = review(order="o-2").model_copy(update={"ingested_at": erased - timedelta(seconds=1)})
    after = buy("o-3", "25").model_copy(update={"ingested_at": erased + timedelta(seconds=1)})
    out = decide([late, late_review, after], state, RULES, T0)
    assert [(p.order_id, p.customer_id, p.ordinal) for p in out.purchases] == [("o-2", hidden, 2), ("o-3", "c-1", 1)]
    assert [(e.customer_id, e.points) for e in out.entries] == [(hidden, 40)]
    assert out.erased_late == [late, late_review]  # the review: no bonus at all, not even the pseudonym's
    assert all(getattr(e, "customer_id", None) == "c-1" for e in out.points + out.notifications)
    assert [n.order_id for n in out.notifications if isinstance(n, FollowUpDue)] == ["o-3"]


# ---- the review bonus ------------------------------------------------------------------------------
def test_a_review_of_an_order_the_customer_bought_is_paid_and_thanked_by_name() -> None:
    state = BatchState(accounts={"c-1": account(profile=Profile("Ms. Ibrayeva", "kk"))},
                       purchases={"o-1": record("o-1")})
    out = decide([review(order="o-1")], state, RULES, T0)
    assert rules_of(out) == [("review_bonus", 25)] and out.not_bought == []
    [thanks] = [n for n in out.notifications if isinstance(n, CustomerThanked)]
    assert (thanks.addressed_to, thanks.language, thanks.points) == ("Ms. Ibrayeva", "kk", 25)


def test_no_bonus_for_an_order_not_bought_or_bought_by_someone_else_or_nothing_named() -> None:
    state = BatchState(accounts={"c-1": account()}, purchases={"o-other": record("o-other", customer="c-2")})
    batch = [review(order="o-unknown"), review(order="o-other"), review(product="sku-never"), review()]
    out = decide(batch, state, RULES, T0)
    assert out.entries == [] and out.points == []
    # The reviewer's account is written with no points: the claim and a purchase decided at the same
    # moment meet on it (see ``Account.stored_revision``).
    assert [(c.customer_id, c.points, c.tier) for c in out.accounts] == [("c-1", 0, None)]
    assert out.not_bought == batch[:3]  # the last names nothing: not even a question
    # Each waits for its purchase, as a claim of the reviewer's.
    assert [(c.customer_id, c.order_id, c.product_id) for c in out.claims] == [
        ("c-1", "o-unknown", None), ("c-1", "o-other", None), ("c-1", None, "sku-never")]


def test_a_product_review_is_paid_only_for_a_product_the_customer_bought_once() -> None:
    state = BatchState(accounts={"c-1": account()}, products_bought={("c-1", "sku-1")})
    out = decide([review(product="sku-1"), review(product="sku-1"), review(product="sku-2")], state, RULES, T0)
    assert rules_of(out) == [("review_bonus", 25)] and len(out.not_bought) == 1
    # Bought in the same batch (a purchase naming its products), then reviewed: paid.
    fresh = decide([buy("o-5", "10", skus=("sku-9",)), review(product="sku-9")], BatchState(), RULES, T0)
    assert rules_of(fresh) == [("review_bonus", 25)]
    assert fresh.purchases[0].skus == ("sku-9",)


def test_two_reviews_of_the_same_order_pay_once_in_a_batch_and_across_batches() -> None:
    state = BatchState(accounts={"c-1": account()}, purchases={"o-1": record("o-1")})
    out = decide([review(order="o-1"), review(order="o-1")], state, RULES, T0)
    [paid] = out.entries
    assert paid.points == 25
    later = replace(state, ledger={paid.entry_id: paid})
    assert decide([review(order="o-1")], later, RULES, T0).entries == []


def test_a_review_that_came_before_its_purchase_is_paid_when_the_purchase_comes_once() -> None:
    early = decide([review(order="o-7"), review(product="sku-3")], BatchState(), RULES, T0)
    claims = early.claims
    assert early.entries == [] and len(claims) == 2
    # Someone else buys o-7: the claim stays; the reviewer buys it (and sku-3 with it): both paid, once.
    state = BatchState(accounts={"c-1": account(profile=Profile("Ms. Ibrayeva"))}, claims=claims)
    other = decide([buy("o-7", "10", customer="c-2")], state, RULES, T0)
    assert other.claims_paid == [] and other.entries == []
    mine = decide([buy("o-7", "10", skus=("sku-3",)), buy("o-8", "10", skus=("sku-3",))], state, RULES, T0)
    assert [(e.rule, e.points, e.order_id, e.source_event_id) for e in mine.entries if e.rule == "review_bonus"] == [
        ("review_bonus", 25, "o-7", claims[0].source_event_id), ("review_bonus", 25, None, claims[1].source_event_id)]
    assert sorted(mine.claims_paid) == sorted(c.source_event_id for c in claims)
    assert [n.reason for n in mine.notifications if isinstance(n, CustomerThanked)].count("review_bonus") == 2
    # The same review again after it was paid: the ledger has it, nothing more.
    paid = replace(state, claims=[], ledger={e.entry_id: e for e in mine.entries},
                   purchases={"o-7": record("o-7", skus=("sku-3",))})
    assert decide([review(order="o-7")], paid, RULES, T0).entries == []


def test_a_review_then_its_purchase_in_one_batch_is_paid_and_leaves_no_claim() -> None:
    out = decide([review(order="o-1"), buy("o-1", "10")], BatchState(), RULES, T0)
    assert [(e.rule, e.points) for e in out.entries] == [("review_bonus", 25)]
    assert out.claims == [] and len(out.claims_paid) == 1


def test_claims_of_an_order_are_kept_once() -> None:
    out = decide([review(order="o-1"), review(order="o-1")], BatchState(), RULES, T0)
    assert out.claims == [ReviewClaim(out.claims[0].source_event_id, "c-1", "o-1", None, T0,
                                      out.claims[0].trace_id)]
