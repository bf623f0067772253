from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from loyalty.points import (
    Credit,
    PointsRules,
    expiry,
    load_rules,
    purchase_credits,
    return_reversal,
    surprise_bonus,
    thank_you_message,
    tier_for,
)

RULES = PointsRules(points_per_unit=Decimal("1"))
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_first_purchase_earns_nothing_unless_welcome_points_are_set() -> None:
    assert purchase_credits(1, Decimal("100"), RULES) == []
    assert purchase_credits(1, Decimal("100"), PointsRules(welcome_points=25)) == [Credit("welcome", 25)]


def test_repeat_purchases_earn_points_per_unit_rounded_down() -> None:
    assert purchase_credits(2, Decimal("59.90"), RULES) == [Credit("repeat_purchase", 59)]
    assert purchase_credits(7, Decimal("10"), PointsRules(points_per_unit=Decimal("2.5"))) == [
        Credit("repeat_purchase", 25)]
    assert purchase_credits(2, Decimal("0.50"), RULES) == []
    with pytest.raises(ValueError, match="ordinal"):
        purchase_credits(0, Decimal("1"), RULES)


def test_return_reversal_clamps_to_the_balance_unless_allowed() -> None:
    assert return_reversal(80, 200, RULES) == Credit("return_reversal", -80)
    assert return_reversal(80, 30, RULES) == Credit("return_reversal", -30)
    assert return_reversal(80, 0, RULES) == Credit("return_reversal", 0)
    assert return_reversal(80, 30, PointsRules(negative_balance="allow")) == Credit("return_reversal", -80)


@pytest.mark.parametrize(("earned", "tier"), [(0, "bronze"), (499, "bronze"), (500, "silver"), (2500, "gold")])
def test_tiers_on_points_earned(earned: int, tier: str) -> None:
    assert tier_for(earned, RULES) == tier


def test_surprise_is_deterministic_per_event_and_rate_limited() -> None:
    rules = PointsRules(surprise_probability=0.5, surprise_points=100, surprise_min_days=90, surprise_seed="s")
    decisions = [surprise_bonus(f"event-{i}", at=T0, last_surprise_at=None, rules=rules) for i in range(200)]
    assert decisions == [surprise_bonus(f"event-{i}", at=T0, last_surprise_at=None, rules=rules) for i in range(200)]
    hits = sum(d is not None for d in decisions)
    assert 70 < hits < 130  # about half, as configured
    lucky = next(i for i, d in enumerate(decisions) if d is not None)
    assert surprise_bonus(f"event-{lucky}", at=T0, last_surprise_at=T0 - timedelta(days=10), rules=rules) is None
    assert surprise_bonus(f"event-{lucky}", at=T0, last_surprise_at=T0 - timedelta(days=91), rules=rules) == Credit(
        "surprise_bonus", 100)
    other_seed = rules.model_copy(update={"surprise_seed": "t"})
    assert [surprise_bonus(f"event-{i}", at=T0, last_surprise_at=None, rules=other_seed) for i in range(200)] != decisions
    assert surprise_bonus("x", at=T0, last_surprise_at=None, rules=RULES.model_copy(update={"surprise_probability": 0})) is None


def test_expiry_after_inactivity_only_when_configured() -> None:
    assert expiry(100, T0, T0 + timedelta(days=1000), RULES) is None
    rules = PointsRules(expiry_inactive_days=365)
    assert expiry(100, T0, T0 + timedelta(days=364), rules) is None
    assert expiry(100, T0, T0 + timedelta(days=366), rules) == Credit("expiry", -100)


def test_thank_you_is_addressed_by_the_preferred_name() -> None:
    assert thank_you_message("repeat_purchase", 40, "Ms. Aliyeva") == (
        "Thank you for shopping with us again, Ms. Aliyeva! 40 points are on their way to you.")
    assert thank_you_message("return_reversal", -40, "x") is None


def test_packaged_rules_file_loads_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    from importlib.resources import files

    packaged = load_rules(Path(str(files("loyalty").joinpath("rules.toml"))))
    assert packaged.tiers == {"bronze": 0, "silver": 500, "gold": 2000}
    bad = tmp_path / "rules.toml"
    bad.write_text('points_per_unit = "2"\npoints_per_euro = 3\n')
    with pytest.raises(ValidationError, match="points_per_euro"):
        load_rules(bad)
