"""The one way a service runs something periodically: a background loop that outlives its failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)


async def every(interval_s: float, tick: Callable[[], Awaitable[object]], *, name: str,
                wait_first: bool = False) -> NoReturn:
    """Run ``tick`` every ``interval_s`` seconds until cancelled. A failing tick is logged (``<name>_failed``,
    with the traceback) and the loop goes on: a database away for a minute must not end the SLA clock or
    the lease renewal for good. ``wait_first``: wait one interval before the first tick."""
    if wait_first:
        await asyncio.sleep(interval_s)
    while True:
        try:
            await tick()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(f"{name}_failed", extra={"loop": name})
        await asyncio.sleep(interval_s)


async def check_and_publish(interval_s: float, check: Callable[[], list[T]],
                            publish: Callable[[list[T]], Awaitable[object]], *, name: str) -> NoReturn:
    """Every ``interval_s``: run the blocking ``check`` in a thread, then ``publish`` what it returned (if
    anything). The SLA clock and the silent-customer sweep are this."""
    async def tick() -> None:
        found = await asyncio.to_thread(check)
        if found:
            await publish(found)

    await every(interval_s, tick, name=name)
