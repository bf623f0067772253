from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator

from alerts.rules import AlertPolicy, load_policy
from alerts.silence import SilenceWindow
from feedback_shared.config import (
    HttpSettings,
    KeyedServiceSettings,
    check_secret,
    service_settings_config,
)
from feedback_shared.outbound import OutboundPolicy


class Settings(KeyedServiceSettings):
    model_config = service_settings_config("ALERTS_")

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8002))
    #: Where alerts go when the customer has no account or the account no CSM.
    fallback_csm_id: str = "fallback-queue"
    #: Notify URLs (Apprise form) of the fallback queue.
    fallback_notify: list[str] = Field(default_factory=list)
    #: Outbox: attempts before a delivery is marked dead, and the backoff between them.
    delivery_max_attempts: int = 8
    delivery_backoff_s: float = 2.0
    delivery_backoff_max_s: float = 300.0
    delivery_poll_s: float = 0.5
    #: Deliveries in flight at once: one slow receiver (an SMTP server taking seconds, a webhook that
    #: never answers) holds one worker, not every page.
    delivery_concurrency: int = 4
    #: Seconds a claimed delivery stays leased to one worker before another may retry it. The worker
    #: renews it every third of that while it holds the delivery, so it runs out only when the worker is
    #: gone (killed, partitioned from the database): a page it held waits at most this long.
    delivery_lease_s: float = 15.0
    inbox_url: str = "http://127.0.0.1:8002/"
    #: The alert policy (TOML); the packaged ``policy.toml`` when unset.
    policy_file: Path | None = None
    #: Every alert event is also POSTed here, signed (Standard Webhooks), for integrations.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    #: Notify URLs (Apprise form) of the manager who gets SLA escalations and crisis alerts.
    manager_notify: list[str] = Field(default_factory=list)
    #: How often the SLA clock is checked.
    sla_poll_s: float = 5.0
    #: Signs the inbox's session cookies and CSRF tokens (at least 32 characters; every replica the
    #: same). Unset in development only: a random one per process.
    session_secret: SecretStr | None = None
    session_max_age_s: int = 8 * 3600
    #: Hosts (names, addresses or networks) notification and webhook URLs may reach although they are
    #: inward: loopback, private, link-local (``feedback_shared.outbound``). The dev stack allows loopback.
    outbound_allow_hosts: list[str] = Field(default_factory=list)
    #: The outgoing mailbox for replies to customers: an Apprise ``mailto://``/``mailtos://`` URL
    #: without ``to`` (the account's address is added), e.g. ``mailtos://user:pass@smtp.example.com?from=care@example.com``.
    customer_mail_url: SecretStr | None = None
    #: How often scheduled customer messages (delay notices, purchase follow-ups) are checked.
    contact_sweep_s: float = 5.0
    #: Silent customers: an active customer (a purchase or feedback in the last ``active_days``) with
    #: no interaction for ``silence_days`` gets one low-priority churn-risk case for their CSM, and no
    #: second one until they interact again. Checked every ``silence_sweep_s``.
    silence_days: int = Field(default=30, ge=1, le=3650)
    active_days: int = Field(default=90, ge=1, le=3650)
    silence_sweep_s: float = Field(default=3600.0, gt=0)
    #: Scored items decided together (one set of bulk reads and writes for the batch), and how long the
    #: consumer waits to fill one, which adds to a page's latency. Most commands are per batch: in make
    #: bench's mixed load (15,000 texts), alerts sent 11,100 commands at 0.05 s, 8,700 at 0.1 s and 7,200
    #: at 0.2 s, and the CPU they cost the database goes to the scoring instead. Measured on the incident
    #: (10,000 cases at 70 items/s, alone on 2 cores): alert p99 0.99 s at 0.05 s and at 0.1 s, 1.81 s at
    #: 0.2 s (larger batches each held their first page longer).
    scored_batch_size: int = Field(default=200, ge=1, le=1000)
    scored_batch_wait_s: float = Field(default=0.1, gt=0, le=5)
    #: How long the insights read model's consumers wait to fill a batch (the report may lag this much).
    #: A batch's aggregate updates cost about the same whatever its size (one per day, need, language
    #: and source it touches), so in a burst a longer wait writes them once for more items. On the embedded
    #: database, one day's items in batches of 205 (5 s of a 41 items/s incident) cost 2.3-2.5 ms of its CPU
    #: each against 3.7 ms in batches of 41 (1 s): about an eighth of all it does per incident item, on
    #: the cores the scoring shares.
    insights_batch_wait_s: float = Field(default=5.0, gt=0, le=60)
    #: How long before its due time a purchase follow-up goes out, so that a sweep sends it by then.
    followup_lead_s: float = 60.0
    #: Per source, the integration URL that posts a public reply where the customer wrote (signed).
    reply_webhooks: dict[str, str] = Field(default_factory=dict)
    #: The services' own addresses or networks (the pod and service CIDRs), never reached unless allowed.
    outbound_own_addresses: list[str] = Field(default_factory=list)

    def silence_window(self) -> SilenceWindow:
        return SilenceWindow(silence=timedelta(days=self.silence_days), active=timedelta(days=self.active_days))

    def outbound_policy(self) -> OutboundPolicy:
        return OutboundPolicy(allow_hosts=frozenset(self.outbound_allow_hosts),
                              own_addresses=frozenset(self.outbound_own_addresses))

    @model_validator(mode="after")
    def _secrets_outside_development(self) -> Self:
        if self.silence_days >= self.active_days:
            raise ValueError("ALERTS_SILENCE_DAYS must be less than ALERTS_ACTIVE_DAYS (an active customer "
                             "is one who interacted within ALERTS_ACTIVE_DAYS)")
        if self.webhook_url and self.webhook_secret is None:
            # Unsigned, an integration cannot tell our events from anyone's.
            raise ValueError("ALERTS_WEBHOOK_SECRET must be set when ALERTS_WEBHOOK_URL is")
        if self.environment == "development":
            return self
        if self.session_secret is None:
            raise ValueError("ALERTS_SESSION_SECRET must be set outside development (32 characters or more)")
        check_secret(self.session_secret.get_secret_value(), "ALERTS_SESSION_SECRET", min_length=32)
        if self.webhook_secret is not None:
            check_secret(self.webhook_secret.get_secret_value(), "ALERTS_WEBHOOK_SECRET", min_length=24)
        return self

    def policy(self) -> AlertPolicy:
        return load_policy(self.policy_file or Path(str(files("alerts").joinpath("policy.toml"))))


@lru_cache
def get_settings() -> Settings:
    return Settings()
