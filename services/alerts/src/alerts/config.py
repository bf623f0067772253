from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from feedback_shared.config import CommonSettings, HttpSettings, service_settings_config


class Settings(CommonSettings):
    model_config = service_settings_config("ALERTS_")

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8002))
    api_keys: list[str] = Field(default_factory=lambda: ["dev-key"])
    #: Where alerts go when the customer has no account or the account no CSM.
    fallback_csm_id: str = "fallback-queue"
    #: Notify URLs (Apprise form) of the fallback queue.
    fallback_notify: list[str] = Field(default_factory=list)
    #: Outbox: attempts before a delivery is marked dead, and the backoff between them.
    delivery_max_attempts: int = 8
    delivery_backoff_s: float = 2.0
    delivery_backoff_max_s: float = 300.0
    delivery_poll_s: float = 0.5
    #: Seconds a claimed delivery stays leased to one worker before another may retry it.
    delivery_lease_s: float = 60.0
    inbox_url: str = "http://127.0.0.1:8002/"


@lru_cache
def get_settings() -> Settings:
    return Settings()
