"""The one periodic loop: a failing tick is logged and the loop goes on; cancelling it ends it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from feedback_shared.loops import every


def test_a_failing_tick_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    ticks: list[int] = []

    async def tick() -> None:
        ticks.append(len(ticks))
        if len(ticks) == 2:
            raise ConnectionError("database away")

    async def run() -> None:
        task = asyncio.create_task(every(0.01, tick, name="sla_check"))
        while len(ticks) < 4:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.ERROR):
        asyncio.run(run())
    assert len(ticks) >= 4
    assert [r.getMessage() for r in caplog.records] == ["sla_check_failed"]


def test_wait_first_waits_one_interval_before_the_first_tick() -> None:
    ticks: list[float] = []

    async def run() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def tick() -> None:
            ticks.append(loop.time() - started)

        task = asyncio.create_task(every(0.2, tick, name="lease_renewal", wait_first=True))
        await asyncio.sleep(0.1)
        before = len(ticks)
        await asyncio.sleep(0.2)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return before

    assert asyncio.run(run()) == 0
    assert ticks and ticks[0] >= 0.19
