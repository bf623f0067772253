"""A batch's offsets are acknowledged only after its effects: not when processing raised, not when a
stop cancelled it; an error no rule classifies (the DLQ cannot be written) stops the partition and is
retried, never acknowledged; a message too large for the DLQ is dead-lettered with its head kept."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from feedback_shared.kafka import (
    DLQ_MAX_VALUE_BYTES,
    DLQ_TRUNCATED_HEADER,
    MessageProcessor,
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


async def run_until(stream: FakeStream, step: Any, done: Any, timeout_s: float = 5.0) -> None:
    task = asyncio.create_task(consume_in_batches(stream, batch_size=3, within_s=0.01, step=step))
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not done():
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


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
