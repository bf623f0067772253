from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from pydantic import Field

from feedback_shared.config import (
    HttpSettings,
    PseudonymSettings,
    service_settings_config,
)
from loyalty.points import PointsRules, load_rules


class Settings(PseudonymSettings):
    model_config = service_settings_config("LOYALTY_")

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8003))
    #: The programme's rules (TOML); the packaged ``rules.toml`` when unset.
    rules_file: Path | None = None
    #: How often to refresh the repeat-business gauges and sweep expired balances.
    housekeeping_interval_s: float = 30.0

    def rules(self) -> PointsRules:
        return load_rules(self.rules_file or Path(str(files("loyalty").joinpath("rules.toml"))))


@lru_cache
def get_settings() -> Settings:
    return Settings()
