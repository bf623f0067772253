"""Pure loyalty decisions: which rules an event triggers, for how many points, the tier, the surprise.

No I/O. Everything is a function of its arguments, so the same event always gives the same decision:
a redelivered event decides exactly what it decided the first time.
"""

from __future__ import annotations

import hashlib
import random
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Rules that earn points (count towards the tier); the others only move the balance.
EARNING_RULES = frozenset({"welcome", "repeat_purchase", "review_bonus", "surprise_bonus"})
REWARDS = ("points", "gift_card", "special_offer")


class PointsRules(BaseModel):
    """The loyalty programme, read from a TOML file an operator can edit (see ``rules.toml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Points per currency unit spent, from the customer's second purchase on (seed 000: repeat buyers).
    points_per_unit: Decimal = Decimal("1")
    #: Points for a first purchase (0 = none).
    welcome_points: int = Field(default=0, ge=0)
    #: Points for a review of an order or product the customer bought, of any sentiment; once per order or
    #: product. The feedback event's ``order_id`` / ``product_id`` say which; a review naming neither earns none.
    review_bonus: int = Field(default=25, ge=0)
    #: Minimum points earned in the window for each tier.
    tiers: dict[str, int] = Field(default_factory=lambda: {"bronze": 0, "silver": 500, "gold": 2000})
    tier_window_days: int = Field(default=365, ge=1)
    #: A return takes back the order's points; "clamp" never takes the balance below zero.
    negative_balance: Literal["clamp", "allow"] = "clamp"
    #: An occasional, unannounced bonus after a repeat purchase (seed 000: the cinema ticket).
    surprise_probability: float = Field(default=0.05, ge=0.0, le=1.0)
    surprise_points: int = Field(default=100, ge=0)
    surprise_min_days: int = Field(default=90, ge=0)
    surprise_seed: str = "feedback-loyalty"
    #: Expire the whole balance after this many days without activity (None = never).
    expiry_inactive_days: int | None = Field(default=None, ge=1)
    #: A post-purchase confirmation is due this many hours after a purchase (seed 000: 24 hours).
    followup_hours: int = Field(default=24, ge=1)


def load_rules(path: Path | None) -> PointsRules:
    """The rules from a TOML file, or the defaults. Unknown keys are an error, not silently ignored."""
    if path is None:
        return PointsRules()
    with path.open("rb") as fh:
        return PointsRules.model_validate(tomllib.load(fh))


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


#: Rules whose points belong to an order, and so go back when it is returned (a review bonus stays).
ORDER_RULES = ("welcome", "repeat_purchase", "return_reversal")
#: Rules that count towards the tier: points earned, net of returns; redemptions and expiry do not lower it.
TIER_RULES = (*sorted(EARNING_RULES), "return_reversal")


def return_reversal(order_points: int, balance: int, rules: PointsRules) -> Credit:
    """A return takes back what the order earned; with "clamp", never more than the balance.

    Zero is a decision too: it is written, so a redelivered return decides nothing new later.
    """
    take = order_points if rules.negative_balance == "allow" else min(order_points, max(balance, 0))
    return Credit("return_reversal", -max(take, 0))


def surprise_bonus(
    event_id: str, *, at: datetime, last_surprise_at: datetime | None, rules: PointsRules
) -> Credit | None:
    """Now and then, a bonus nobody asked for. Deterministic per event and seed; at most one per
    customer every ``surprise_min_days``. Only purchases trigger it, never a customer's request."""
    if rules.surprise_points <= 0 or rules.surprise_probability <= 0:
        return None
    if last_surprise_at is not None and at - last_surprise_at < timedelta(days=rules.surprise_min_days):
        return None
    seed = int.from_bytes(hashlib.sha256(f"{rules.surprise_seed}|{event_id}".encode()).digest()[:8], "big")
    if random.Random(seed).random() >= rules.surprise_probability:
        return None
    return Credit("surprise_bonus", rules.surprise_points)


def tier_for(points_earned: int, rules: PointsRules) -> str:
    for name, threshold in sorted(rules.tiers.items(), key=lambda kv: -kv[1]):
        if points_earned >= threshold:
            return name
    return min(rules.tiers, key=lambda name: rules.tiers[name])


def expiry(balance: int, last_activity_at: datetime, now: datetime, rules: PointsRules) -> Credit | None:
    if rules.expiry_inactive_days is None or balance <= 0:
        return None
    if now - last_activity_at < timedelta(days=rules.expiry_inactive_days):
        return None
    return Credit("expiry", -balance)


def salutation(preferred_name: str | None) -> str:
    """How to address the customer: their preferred form, else a neutral greeting (no first name
    without permission, seed 001)."""
    return preferred_name or "valued customer"


THANK_YOU = {
    "repeat_purchase": "Thank you for shopping with us again, {name}! {points} points are on their way to you.",
    "welcome": "Welcome, {name}, and thank you for your first order! Here are {points} points to start.",
    "review_bonus": "Thank you for taking the time to tell us what you think, {name}. {points} points for you.",
    "surprise_bonus": "A small surprise for you, {name}: {points} extra points, just to say thank you.",
}


def thank_you_message(rule: str, points: int, name: str) -> str | None:
    template = THANK_YOU.get(rule)
    return template.format(name=name, points=points) if template else None
