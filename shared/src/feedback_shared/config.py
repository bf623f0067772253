"""Settings shared by every service.

Each service has one frozen ``Settings(BaseSettings)`` in ``<svc>/config.py`` with its own env prefix
(``INGEST_``, ``SENTIMENT_``, ``ALERTS_``, ``LOYALTY_``) and ``__`` as the nested delimiter, so
``ALERTS_KAFKA__BOOTSTRAP_SERVERS`` sets ``settings.kafka.bootstrap_servers``. The sub-models here are
plain ``BaseModel``s. Settings are built once in the entry point, never at import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Self, cast

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The key ``make run`` prints; accepted only while ``environment`` is ``development``.
DEV_API_KEY = "dev-key"

#: Parts of the example values in the deploy files: a secret holding one was never replaced.
PLACEHOLDER_MARKS = ("change-me", "changeme", "change_me", "replace-me", "placeholder", "example",
                     "not-for-production", "dev-key", "dev-webhook", "dev-session")


def check_secret(value: str, variable: str, min_length: int) -> None:
    """Refuse a secret that is short or still a placeholder, naming the variable (used outside
    development). A Standard Webhooks secret (``whsec_<base64>``) is judged by what it decodes to."""
    text = value
    if value.startswith("whsec_"):
        import base64
        import binascii

        try:
            text = base64.b64decode(value.removeprefix("whsec_"), validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            text = value
    lowered = text.lower()
    if any(mark in lowered for mark in PLACEHOLDER_MARKS):
        raise ValueError(f"{variable} still holds a placeholder value: set a real secret")
    if len(text) < min_length:
        raise ValueError(f"{variable} is too short ({len(text)} characters; at least {min_length})")


def check_api_keys(keys: list[str], environment: str, variable: str) -> None:
    """Refuse the development key anywhere but in development. (Empty is fine: principals' tokens
    come from the auth database, ``feedbackctl tokens create``.)"""
    if DEV_API_KEY in keys and environment != "development":
        raise ValueError(f"{variable} still holds the development key outside development")
    if environment != "development":
        for key in keys:
            check_secret(key, variable, min_length=24)


class KafkaSettings(BaseModel):
    """Where the Kafka-protocol broker is, how clients authenticate, and how consumers behave."""

    # hide_input_in_errors: a validation error would otherwise print the raw SASL password it was given.
    model_config = {"frozen": True, "hide_input_in_errors": True}

    bootstrap_servers: str = "127.0.0.1:9092"
    #: Publish timeout before ingest answers 503: the broker must acknowledge within this.
    publish_timeout_s: float = 10.0
    #: The largest record any producer here sends (kafka-python's ``max_request_size`` and faust's
    #: ``producer_max_request_size``, set alike); keep it at or under the broker's ``message.max.bytes``.
    max_message_bytes: int = 1_048_576
    # A faust worker joins its group only after the broker's rebalance/session timeout; keep them short
    # in dev and tests (the embedded broker waits out the session timeout before completing a join).
    rebalance_timeout_s: float = 3.0
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 1.0
    #: Prefix for consumer-group ids, so two stacks can share one broker (tests) without stealing messages.
    group_prefix: str = "feedback"
    #: How long a consumer's fetch may wait at the broker for data. faust fixes it at 1,500 ms; Kafka
    #: answers a waiting fetch as soon as data arrives, but the embedded broker (Tansu) holds it for
    #: the wait: 0.36 s median per hop measured at 1,500 ms, 13 ms at 100 ms. An idle consumer then
    #: sends ten empty fetches a second, which neither broker notices.
    fetch_max_wait_ms: int = 100
    #: Where faust puts its state directory (``<group>-<app>-data``); the stores are in memory, but
    #: faust still creates it. None: the working directory (the k8s manifests mount one per pod).
    state_dir: Path | None = None

    # ---- transport security (every client: kafka-python, faust/aiokafka; ``client_security_options``) --
    #: PLAINTEXT on the dev stack; the prod overlay uses SASL_SSL (SCRAM over TLS).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    #: Required with SASL_PLAINTEXT and SASL_SSL, with ``sasl_username`` and ``sasl_password``.
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    #: The CA that signed the brokers' certificates (SSL, SASL_SSL); None: the system's CAs.
    ssl_cafile: Path | None = None
    #: A client certificate and its key, for brokers that authenticate clients by TLS (mutual TLS).
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    # ---- topics (``ensure_topics``) ----------------------------------------------------------------
    #: Copies of each partition. 1 on a one-broker stack; 3 in production (the prod overlay), where
    #: ``min.insync.replicas`` is 2, so acks=all survives one broker down.
    replication_factor: int = Field(default=1, ge=1)
    #: How long a topic keeps its records (``retention.ms``): 7 days. This also bounds how long an erased
    #: customer's feedback text stays in Kafka (deploy/README.md, "What stays in Kafka").
    retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=3_600_000)
    #: Retention of the ``.dlq`` topics: 30 days, time for someone to look at what failed and replay it.
    dlq_retention_ms: int = Field(default=30 * 24 * 3600 * 1000, ge=3_600_000)

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Self:
        if self.security_protocol.startswith("SASL_"):
            missing = [f"KAFKA__{name.upper()}" for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                       if not getattr(self, name)]
            if missing:
                raise ValueError(f"KAFKA__SECURITY_PROTOCOL={self.security_protocol} needs {', '.join(missing)}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("KAFKA__SSL_CERTFILE and KAFKA__SSL_KEYFILE go together (a client certificate and its key)")
        if (self.ssl_cafile or self.ssl_certfile) and not self.security_protocol.endswith("SSL"):
            raise ValueError(f"KAFKA__SSL_* files are set but KAFKA__SECURITY_PROTOCOL={self.security_protocol} "
                             "does not use TLS (SSL or SASL_SSL)")
        return self


def mongo_url_password(url: str) -> str | None:
    """The password in a ``mongodb://user:password@hosts/...`` URL (None: the URL has none)."""
    from urllib.parse import unquote

    _, sep, rest = url.partition("://")
    userinfo, at, _ = rest.partition("@")
    if not sep or not at or "/" in userinfo:
        return None
    _, colon, password = userinfo.partition(":")
    return unquote(password) if colon else None


class MongoSettings(BaseModel):
    """Where the MongoDB-protocol database is. Each service owns its own database."""

    model_config = {"frozen": True, "hide_input_in_errors": True}  # the URL holds the password

    url: SecretStr = SecretStr("mongodb://127.0.0.1:27017")
    database: str = ""
    server_selection_timeout_ms: int = 5000
    #: The driver's retryable writes. Keep them on MongoDB. The embedded stack turns them off: SecantusDB
    #: scans every retryable-write record it holds on each write, which made its CPU per write grow with
    #: the run (make bench: 639 CPU-s for 20,000 events). Every write here is idempotent and retried by
    #: its handler, so the driver's one extra retry is not what keeps anything from being lost.
    retry_writes: bool = True
    #: TLS to the database. Authentication is in ``url`` (``mongodb://user:password@host/db?authSource=admin``,
    #: a secret); ``tls=true`` in the URL works as well.
    tls: bool = False
    #: The CA that signed the server's certificate (``tlsCAFile``); None: the system's CAs.
    tls_ca_file: Path | None = None


class AuthSettings(BaseModel):
    """Where principals' tokens are (``feedback_shared.auth``), and what needs none."""

    model_config = {"frozen": True}

    #: The database, on the service's MongoDB server, whose ``tokens`` collection every service reads.
    database: str = "auth"
    #: How long a token lookup is trusted: a revoked token stops working within this.
    cache_ttl_s: float = 10.0
    #: Serve ``/metrics`` without a token (a scraper inside the cluster; the NetworkPolicies keep it
    #: there). Off: Prometheus sends a ``reader`` token.
    metrics_public: bool = False


class HttpSettings(BaseModel):
    model_config = {"frozen": True}

    host: str = "127.0.0.1"
    port: int = 8000


def service_settings_config(prefix: str) -> SettingsConfigDict:
    """The pydantic-settings config every service uses.

    ``secrets_dir`` is set only when ``/run/secrets`` exists: a missing directory only warns, and the
    test suite turns warnings into errors.
    """
    cfg: dict[str, Any] = {
        "env_prefix": prefix,
        "env_nested_delimiter": "__",
        "frozen": True,
        "extra": "ignore",
    }
    if os.path.isdir("/run/secrets"):
        cfg["secrets_dir"] = "/run/secrets"
    return cast(SettingsConfigDict, cfg)


class CommonSettings(BaseSettings):
    """Fields every service has. Subclasses set ``model_config`` with their env prefix."""

    #: Production unless said otherwise: the development key, placeholder secrets and missing
    #: secrets are refused there. ``make run`` and the tests set ``development``.
    environment: str = "production"
    log_level: str = "INFO"
    log_json: bool = True
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)

    @model_validator(mode="after")
    def _no_placeholder_credentials_outside_development(self) -> Self:
        """The Kafka SASL password and the password in the MongoDB URL: never an example value outside
        development (named by variable; the prod overlay's secrets.env.example holds ``change-me``)."""
        if self.environment == "development":
            return self
        prefix = self.model_config.get("env_prefix", "")
        if self.kafka.sasl_password is not None:
            check_secret(self.kafka.sasl_password.get_secret_value(), f"{prefix}KAFKA__SASL_PASSWORD", min_length=16)
        password = mongo_url_password(self.mongo.url.get_secret_value())
        if password is not None and any(mark in password.lower() for mark in PLACEHOLDER_MARKS):
            raise ValueError(f"{prefix}MONGO__URL holds a placeholder password: set the database user's real one")
        return self


class KeyedServiceSettings(CommonSettings):
    """A service whose API takes tokens (``Authorization: Bearer …``). ``<PREFIX>API_KEYS`` are static
    admin tokens (the bootstrap; ``feedbackctl tokens create`` makes the rest). The development key is
    refused outside development, with the variable named."""

    #: Unset: the development key in development, none elsewhere.
    api_keys: list[str] = Field(default_factory=list)
    #: Largest request body (413 above it, whether or not Content-Length is sent).
    max_body_bytes: int = 1_000_000

    @model_validator(mode="before")
    @classmethod
    def _dev_key_by_default_in_development(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_keys" not in data:
            environment = data.get("environment", cls.model_fields["environment"].default)
            if environment == "development":
                data = {**data, "api_keys": [DEV_API_KEY]}
        return data

    @model_validator(mode="after")
    def _refuse_dev_key_outside_development(self) -> Self:
        check_api_keys(self.api_keys, self.environment, f"{self.model_config.get('env_prefix', '')}API_KEYS")
        return self


#: The development stand-in for ``<PREFIX>PSEUDONYM_KEY`` (refused elsewhere, as a placeholder).
DEV_PSEUDONYM_KEY = "dev-pseudonym-key-not-for-production"


class PseudonymSettings(KeyedServiceSettings):
    """A service that derives pseudonyms (a complaint's contact detail, an erased customer's id):
    keyed HMACs with ``<PREFIX>PSEUDONYM_KEY``, so knowing an e-mail address or a customer id is not
    enough to find the pseudonym. Required, 32 characters or more, outside development."""

    pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)

    @model_validator(mode="after")
    def _pseudonym_key_outside_development(self) -> Self:
        if self.environment != "development":
            variable = f"{self.model_config.get('env_prefix', '')}PSEUDONYM_KEY"
            check_secret(self.pseudonym_key.get_secret_value(), variable, min_length=32)
        return self


def kafka_settings_from_env(prefix: str) -> KafkaSettings:
    """A service's Kafka settings alone, from ``<prefix>KAFKA__*`` (as the service reads them), without the
    rest of its settings: for the topic job, which runs the ingest image with ingest's Kafka user."""

    class KafkaOnly(BaseSettings):
        model_config = service_settings_config(prefix)
        kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    return KafkaOnly().kafka
