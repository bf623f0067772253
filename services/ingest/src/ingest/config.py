from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from feedback_shared.config import (
    HttpSettings,
    PseudonymSettings,
    check_secret,
    service_settings_config,
)
from feedback_shared.outbound import OutboundPolicy


class FeedSettings(BaseModel):
    """One RSS or Atom feed to follow."""

    model_config = ConfigDict(frozen=True)

    url: str
    source: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$")] = "rss"
    kind: Literal["mention", "review"] = "mention"
    interval_s: Annotated[float, Field(ge=5)] = 300.0
    is_public: bool = True
    #: The largest feed body read (a feed is a third party's input); a larger one is refused, not parsed.
    max_bytes: Annotated[int, Field(ge=1024, le=100_000_000)] = 10_000_000
    #: Seconds a body may take to parse (in a process of its own, killed at the limit; ``ingest.feeds``).
    parse_timeout_s: Annotated[float, Field(ge=0.5, le=300)] = 20.0


class Settings(PseudonymSettings):
    model_config = service_settings_config("INGEST_")

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8000))
    #: Largest request body; a batch of 1,000 items must fit.
    max_body_bytes: int = 8_000_000
    #: Seconds a client is told to wait (``Retry-After``) when the broker or database is down.
    retry_after_s: int = 5
    #: Per-source secrets for ``POST /v1/webhooks/{source}`` (``whsec_<base64>`` or a plain string).
    webhook_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    #: How far a webhook's timestamp may be from now, so a captured request cannot be replayed later.
    webhook_tolerance_s: int = 300
    #: RSS/Atom feeds to follow, e.g. ``[{"url": "https://…/feed", "source": "reddit", "kind": "mention"}]``.
    feeds: list[FeedSettings] = Field(default_factory=list)
    #: Hosts (names, addresses or networks) a feed URL, or a redirect from one, may reach although they are
    #: inward: loopback, private, link-local (``feedback_shared.outbound``). None by default.
    feed_allow_hosts: list[str] = Field(default_factory=list)

    def feed_outbound_policy(self) -> OutboundPolicy:
        return OutboundPolicy(allow_hosts=frozenset(self.feed_allow_hosts))

    @model_validator(mode="after")
    def _webhook_secrets_outside_development(self) -> Self:
        if self.environment != "development":
            for source, secret in self.webhook_secrets.items():
                check_secret(secret.get_secret_value(), f"INGEST_WEBHOOK_SECRETS[{source}]", min_length=24)
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
