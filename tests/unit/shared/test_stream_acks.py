"""A batch's offsets are acknowledged only after its effects: not when processing raised, not when a
stop cancelled it; an error no rule classifies (the DLQ cannot be written) stops the partition and is
retried, never acknowledged; a message too large for the DLQ is dead-lettered with its head kept. With
batches in flight, a later batch may finish first but is acknowledged only after every earlier one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from feedback_shared.kafka import (
    DLQ_MAX_VALUE_BYTES,
    DLQ_TRUNCATED_HEADER,
    MessageProcessor,
    PublishTurns,
    consume_in_batches,
)
from feedback_shared.topics import FEEDBACK_RECEIVED
from tests.unit.fuzz.test_fuzz_kafka import FakeApp


class FakeStream:
    """Yields its events, then waits (a partition with nothing new); records what was acknowledged."""

    def __init__(self, events: list[Any]) -> None:
        self.pending = list(events)
        self.enable_acks = True
        self.acked: list[Any] = []

    async def events(self) -> Any:
        for event in self.pending:
            yield event
        await asyncio.Event().wait()

    async def ack(self, event: Any) -> None:
        self.acked.append(event)


def event(offset: int, value: bytes = b"{}") -> SimpleNamespace:
    return SimpleNamespace(value=value, message=SimpleNamespace(topic=FEEDBACK_RECEIVED.name, partition=0,
                                                                offset=offset, key=b"k"))


@contextlib.asynccontextmanager
async def consuming(stream: FakeStream, step: Any, in_flight: int = 1) -> AsyncIterator[None]:
    """The stream consumed in batches of 3 until the block ends (a stop: the task is cancelled)."""
    task = asyncio.create_task(consume_in_batches(stream, batch_size=3, within_s=0.01, step=step, in_flight=in_flight))
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def until(check: Any, timeout_s: float = 5.0, what: str = "timed out") -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.01)


async def run_until(stream: FakeStream, step: Any, done: Any, timeout_s: float = 5.0) -> None:
    async with consuming(stream, step):
        await until(done, timeout_s)


def test_batches_are_acknowledged_after_their_step_and_not_before() -> None:
    stream = FakeStream([event(i) for i in range(7)])
    seen: list[list[int]] = []

    async def step(batch: list[Any]) -> None:
        assert not any(e in stream.acked for e in batch)
        seen.append([e.message.offset for e in batch])

    asyncio.run(run_until(stream, step, lambda: len(stream.acked) == 7))
    assert [o for batch in seen for o in batch] == list(range(7))
    assert max(len(b) for b in seen) <= 3
    assert stream.enable_acks is False


def test_a_batch_cancelled_by_a_stop_is_not_acknowledged() -> None:
    stream = FakeStream([event(0), event(1)])
    started = asyncio.Event()

    async def step(batch: list[Any]) -> None:
        started.set()
        await asyncio.Event().wait()  # still working when the worker stops

    async def scenario() -> None:
        task = asyncio.create_task(consume_in_batches(stream, batch_size=3, within_s=0.01, step=step))
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert stream.acked == []  # delivered again after the restart, not lost


class FailingDlqTopic:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[dict[str, Any]] = []

    async def send(self, *, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("the DLQ record was refused")
        self.sent.append({"value": value, "headers": dict(headers)})
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_a_failing_dlq_write_stops_the_partition_and_is_retried_never_acknowledged() -> None:
    processor: MessageProcessor[Any] = MessageProcessor(FakeApp(), FEEDBACK_RECEIVED, lambda _: None,  # type: ignore[arg-type,return-value]
                                                        max_backoff_s=0.001)
    processor.dlq_topic = dlq = FailingDlqTopic(failures=2)
    stalls: list[str] = []
    stream = FakeStream([event(0, b"not json")])

    async def step(batch: list[Any]) -> None:
        await processor.process_batch_until_done(batch, lambda _models: asyncio.sleep(0), stalls.append)

    async def scenario() -> None:
        acked_while_failing: list[int] = []

        async def watch() -> None:
            while not dlq.sent:
                acked_while_failing.append(len(stream.acked))
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        await run_until(stream, step, lambda: len(stream.acked) == 1, timeout_s=20)
        await watcher
        assert set(acked_while_failing) <= {0}

    asyncio.run(scenario())
    assert stalls == [FEEDBACK_RECEIVED.name] * 2
    assert len(dlq.sent) == 1


def test_a_message_too_large_for_the_dlq_keeps_its_head_and_says_so() -> None:
    processor: MessageProcessor[Any] = MessageProcessor(FakeApp(), FEEDBACK_RECEIVED, lambda _: None)  # type: ignore[arg-type,return-value]
    huge = b"x" * (DLQ_MAX_VALUE_BYTES + 10)
    asyncio.run(processor.dead_letter(event(5, huge), "not JSON"))
    [letter] = processor.dlq_topic.sent
    assert len(letter["value"]) == DLQ_MAX_VALUE_BYTES
    assert letter["headers"][DLQ_TRUNCATED_HEADER] == str(len(huge)).encode()


def test_batches_in_flight_start_before_the_oldest_ends_and_are_acknowledged_in_order() -> None:
    stream = FakeStream([event(i) for i in range(6)])
    release_first = asyncio.Event()
    finished: list[int] = []

    async def step(batch: list[Any]) -> None:
        first = batch[0].message.offset
        if first == 0:
            await release_first.wait()
        finished.append(first)

    async def scenario() -> None:
        async with consuming(stream, step, in_flight=2):
            # The second batch runs to its end while the first still works …
            await until(lambda: 3 in finished, what="the second batch never started")
            await asyncio.sleep(0.05)
            assert stream.acked == []  # … and is not acknowledged past the first, still running.
            release_first.set()
            await until(lambda: len(stream.acked) == 6)

    asyncio.run(scenario())
    assert finished == [3, 0]
    assert [e.message.offset for e in stream.acked] == list(range(6))


def test_with_one_batch_in_flight_the_next_waits_for_the_last() -> None:
    stream = FakeStream([event(i) for i in range(6)])
    running = 0
    most = 0

    async def step(batch: list[Any]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1

    asyncio.run(run_until(stream, step, lambda: len(stream.acked) == 6))
    assert most == 1


def test_a_lone_batch_in_flight_is_acknowledged_without_waiting_for_another() -> None:
    stream = FakeStream([event(0), event(1)])

    async def step(batch: list[Any]) -> None:
        await asyncio.sleep(0)

    async def scenario() -> None:
        async with consuming(stream, step, in_flight=3):
            await until(lambda: len(stream.acked) == 2)

    asyncio.run(scenario())


def test_a_failed_batch_stops_the_stream_and_nothing_after_it_is_acknowledged() -> None:
    stream = FakeStream([event(i) for i in range(9)])
    later_done = asyncio.Event()

    async def step(batch: list[Any]) -> None:
        first = batch[0].message.offset
        if first == 3:
            await later_done.wait()
            raise RuntimeError("a bug outside every rule")
        if first == 6:
            later_done.set()

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="a bug outside every rule"):
            await asyncio.wait_for(
                consume_in_batches(stream, batch_size=3, within_s=0.01, step=step, in_flight=2), 5)

    asyncio.run(scenario())
    # The first batch, done before the failure, is acknowledged; the failed one and the one after it
    # (which had finished) are not: both are delivered again.
    assert [e.message.offset for e in stream.acked] == [0, 1, 2]


def test_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="in_flight"):
        asyncio.run(consume_in_batches(FakeStream([]), batch_size=3, within_s=0.01, step=lambda _: asyncio.sleep(0),
                                       in_flight=0))


def test_publish_turns_keep_the_order_taken_and_a_failed_turn_lets_the_next_go() -> None:
    turns = PublishTurns()
    published: list[str] = []

    async def batch(name: str, delay: float, fail: bool = False) -> None:
        turn = turns.take()
        try:
            await asyncio.sleep(delay)  # scoring: the later batch is done first
            if fail:
                raise RuntimeError(name)
            await turn.ready()
            published.append(name)
        finally:
            turn.done()

    async def scenario() -> None:
        results = await asyncio.gather(batch("a", 0.05), batch("b", 0.06, fail=True), batch("c", 0.0),
                                       return_exceptions=True)
        assert isinstance(results[1], RuntimeError)

    asyncio.run(scenario())
    assert published == ["a", "c"]


def test_a_stop_cancels_every_running_batch_and_waits_for_them() -> None:
    stream = FakeStream([event(i) for i in range(6)])
    started: list[int] = []
    stopped: list[int] = []

    async def step(batch: list[Any]) -> None:
        started.append(batch[0].message.offset)
        try:
            await asyncio.Event().wait()  # both batches still working when the worker stops
        finally:
            stopped.append(batch[0].message.offset)

    async def scenario() -> None:
        async with consuming(stream, step, in_flight=2):
            await until(lambda: len(started) == 2)
        # Back from the stop: both steps have run their cleanup, neither batch is acknowledged.
        assert sorted(stopped) == [0, 3]

    asyncio.run(scenario())
    assert stream.acked == []
