"""The one way a service process starts: logging configured, settings built, uvicorn serving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import uvicorn

from feedback_shared.config import CommonSettings
from feedback_shared.logs import configure_logging


def serve(service: str, settings: CommonSettings, create_app: Callable[[Any], Any]) -> None:
    configure_logging(service, settings.log_level, settings.log_json)
    http = settings.http  # type: ignore[attr-defined]
    # uvicorn owns SIGTERM/SIGINT: it runs the lifespan's shutdown, which stops the faust worker.
    uvicorn.run(create_app(settings), host=http.host, port=http.port, log_config=None, access_log=False)
