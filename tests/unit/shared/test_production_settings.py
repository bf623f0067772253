"""Safe for production by default: the environment defaults to production, where placeholder and short
keys and secrets are refused with the variable named, webhooks need their secret, and pseudonyms are
keyed HMACs (knowing the e-mail address or the customer id is not enough to find them)."""

from __future__ import annotations

import hashlib

import pytest

from alerts.config import Settings as AlertsSettings
from feedback_shared.config import CommonSettings
from feedback_shared.pii import pseudonym
from ingest.config import Settings as IngestSettings
from loyalty.config import Settings as LoyaltySettings
from loyalty.decide import pseudonym as erased_pseudonym

STRONG = "Kq7vX2mPz9LwT4rN8bYc3HjD6fGs5QaE"
PROD = {"environment": "production"}


def test_the_environment_defaults_to_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INGEST_ENVIRONMENT", raising=False)
    assert CommonSettings.model_fields["environment"].default == "production"
    with pytest.raises(ValueError, match="INGEST_PSEUDONYM_KEY"):
        IngestSettings()  # production, and no pseudonym key: refused


@pytest.mark.parametrize(("build", "variable"), [
    (lambda: IngestSettings(**PROD, api_keys=["change-me-ingest-key"], pseudonym_key=STRONG), "INGEST_API_KEYS"),
    (lambda: IngestSettings(**PROD, api_keys=["short"], pseudonym_key=STRONG), "INGEST_API_KEYS"),
    (lambda: IngestSettings(**PROD, pseudonym_key="change-me-to-a-random-string-of-at-least-32"),
     "INGEST_PSEUDONYM_KEY"),
    (lambda: IngestSettings(**PROD, pseudonym_key=STRONG, webhook_secrets={"trustpilot": "tiny"}),
     "INGEST_WEBHOOK_SECRETS[trustpilot]"),
    (lambda: LoyaltySettings(**PROD), "LOYALTY_PSEUDONYM_KEY"),
    (lambda: AlertsSettings(**PROD), "ALERTS_SESSION_SECRET"),
    (lambda: AlertsSettings(**PROD, session_secret="x" * 10), "ALERTS_SESSION_SECRET"),
    (lambda: AlertsSettings(**PROD, session_secret=STRONG, webhook_url="https://hooks.example.net/a"),
     "ALERTS_WEBHOOK_SECRET"),
    (lambda: AlertsSettings(**PROD, session_secret=STRONG, webhook_url="https://hooks.example.net/a",
                            webhook_secret="whsec_Y2hhbmdlLW1lLWNoYW5nZS1tZS1jaGFuZ2UtbWUhIQ=="),
     "ALERTS_WEBHOOK_SECRET"),
])
def test_placeholder_short_and_missing_secrets_are_refused_naming_the_variable(build: object, variable: str) -> None:
    with pytest.raises(ValueError, match=variable.replace("[", r"\[").replace("]", r"\]")):
        build()  # type: ignore[operator]


def test_strong_secrets_load_in_production() -> None:
    assert IngestSettings(**PROD, api_keys=[STRONG], pseudonym_key=STRONG).environment == "production"
    assert AlertsSettings(**PROD, session_secret=STRONG, webhook_url="https://hooks.example.net/a",
                          webhook_secret=STRONG).webhook_secret is not None
    assert LoyaltySettings(**PROD, pseudonym_key=STRONG).api_keys == []


def test_outbound_webhooks_need_a_secret_even_in_development() -> None:
    with pytest.raises(ValueError, match="ALERTS_WEBHOOK_SECRET"):
        AlertsSettings(environment="development", webhook_url="https://hooks.example.net/a")


def test_pseudonyms_are_keyed_not_plain_hashes() -> None:
    address = "anna@example.com"
    keyed = pseudonym(b"k1" * 16, address, prefix="anon-", length=20)
    assert keyed != "anon-" + hashlib.sha256(address.encode()).hexdigest()[:20]
    assert keyed == pseudonym(b"k1" * 16, address, prefix="anon-", length=20)  # stable
    assert keyed != pseudonym(b"k2" * 16, address, prefix="anon-", length=20)  # the key decides
    assert erased_pseudonym("c-1", b"a" * 32) != erased_pseudonym("c-1", b"b" * 32)
    assert erased_pseudonym("c-1") != "erased-" + hashlib.sha256(b"loyalty-erasure|c-1").hexdigest()[:24]
