"""Global hygiene only: no service setting leaks in from the developer's environment."""

from __future__ import annotations

import os

import pytest

SERVICE_PREFIXES = ("INGEST_", "SENTIMENT_", "ALERTS_", "LOYALTY_")


@pytest.fixture(autouse=True)
def _clean_service_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(SERVICE_PREFIXES):
            monkeypatch.delenv(name)
