"""Global hygiene only: no service setting leaks in from the developer's environment, and settings built
in a test are development settings (production is the default, with its required secrets) unless the
test says ``environment="production"``."""

from __future__ import annotations

import os

import pytest

SERVICE_PREFIXES = ("INGEST_", "SENTIMENT_", "ALERTS_", "LOYALTY_")
# For settings built at collection or in module- and session-scoped fixtures too.
for _prefix in SERVICE_PREFIXES:
    os.environ[f"{_prefix}ENVIRONMENT"] = "development"


@pytest.fixture(autouse=True)
def _clean_service_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(SERVICE_PREFIXES):
            monkeypatch.delenv(name)
    for prefix in SERVICE_PREFIXES:
        monkeypatch.setenv(f"{prefix}ENVIRONMENT", "development")
