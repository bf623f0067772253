from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from pydantic import Field

from feedback_shared.config import CommonSettings, HttpSettings, service_settings_config
from loyalty.points import PointsRules


class Settings(CommonSettings):
    model_config = service_settings_config("LOYALTY_")

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8003))
    rules: PointsRules = Field(default_factory=lambda: PointsRules(points_per_unit=Decimal("1")))


@lru_cache
def get_settings() -> Settings:
    return Settings()
