"""Pure loyalty decisions: which rules a purchase or a return triggers, and the tier for points earned."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from pydantic import BaseModel, ConfigDict, Field


class PointsRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: Points per currency unit spent, from the customer's second purchase on (seed 000: repeat buyers).
    points_per_unit: Decimal = Decimal("1")
    #: Points for a first purchase (0 = none).
    welcome_points: int = 0
    #: Minimum points earned for each tier, highest first.
    tiers: dict[str, int] = Field(default_factory=lambda: {"gold": 2000, "silver": 500, "bronze": 0})


@dataclass(frozen=True)
class Credit:
    rule: str
    points: int


def purchase_credits(ordinal: int, amount: Decimal, rules: PointsRules) -> list[Credit]:
    """Credits for the customer's ``ordinal``-th purchase (1 = first)."""
    if ordinal < 1:
        raise ValueError("purchase ordinal starts at 1")
    if ordinal == 1:
        return [Credit("welcome", rules.welcome_points)] if rules.welcome_points > 0 else []
    points = int((amount * rules.points_per_unit).to_integral_value(rounding=ROUND_FLOOR))
    return [Credit("repeat_purchase", points)] if points > 0 else []


def return_reversal(order_points: int) -> list[Credit]:
    """A return takes back what the order earned."""
    return [Credit("return_reversal", -order_points)] if order_points > 0 else []


def tier_for(points_earned: int, rules: PointsRules) -> str:
    for name, threshold in sorted(rules.tiers.items(), key=lambda kv: -kv[1]):
        if points_earned >= threshold:
            return name
    return min(rules.tiers, key=lambda name: rules.tiers[name])
