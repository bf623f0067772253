from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from feedback_shared.config import (
    DEV_API_KEY,
    CommonSettings,
    HttpSettings,
    check_api_keys,
    service_settings_config,
)
from loyalty.points import PointsRules, load_rules


class Settings(CommonSettings):
    model_config = service_settings_config("LOYALTY_")

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8003))
    api_keys: list[str] = Field(default_factory=lambda: [DEV_API_KEY])
    #: The programme's rules (TOML); the packaged ``rules.toml`` when unset.
    rules_file: Path | None = None
    #: How often to refresh the repeat-business gauges and sweep expired balances.
    housekeeping_interval_s: float = 30.0

    def rules(self) -> PointsRules:
        return load_rules(self.rules_file or Path(str(files("loyalty").joinpath("rules.toml"))))


    @model_validator(mode="after")
    def _refuse_dev_key_outside_development(self) -> Self:
        check_api_keys(self.api_keys, self.environment, "LOYALTY_API_KEYS")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
