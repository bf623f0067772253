from __future__ import annotations

from decimal import Decimal

import pytest

from loyalty.points import Credit, PointsRules, purchase_credits, return_reversal, tier_for

RULES = PointsRules(points_per_unit=Decimal("1"))


def test_first_purchase_earns_nothing_unless_welcome_points_are_set() -> None:
    assert purchase_credits(1, Decimal("100"), RULES) == []
    welcome = PointsRules(welcome_points=25)
    assert purchase_credits(1, Decimal("100"), welcome) == [Credit("welcome", 25)]


def test_repeat_purchases_earn_points_per_unit_rounded_down() -> None:
    assert purchase_credits(2, Decimal("59.90"), RULES) == [Credit("repeat_purchase", 59)]
    assert purchase_credits(7, Decimal("10"), PointsRules(points_per_unit=Decimal("2.5"))) == [
        Credit("repeat_purchase", 25)
    ]
    assert purchase_credits(2, Decimal("0.50"), RULES) == []
    with pytest.raises(ValueError, match="ordinal"):
        purchase_credits(0, Decimal("1"), RULES)


def test_return_reverses_what_the_order_earned() -> None:
    assert return_reversal(80) == [Credit("return_reversal", -80)]
    assert return_reversal(0) == []


@pytest.mark.parametrize(("earned", "tier"), [(0, "bronze"), (499, "bronze"), (500, "silver"), (2500, "gold")])
def test_tiers_on_points_earned(earned: int, tier: str) -> None:
    assert tier_for(earned, RULES) == tier
