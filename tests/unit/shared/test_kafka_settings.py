"""The faust apps' consumers take their fetch wait from the settings, not faust's fixed 1,500 ms (on the
embedded broker every hop waited out most of it: 0.36 s median per hop)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from feedback_shared.config import KafkaSettings
from feedback_shared.kafka import create_faust_app


def _fetch_wait_of_worker_consumer(settings: KafkaSettings) -> int:
    async def build() -> int:
        app = create_faust_app("fetch-wait-test", settings)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()  # never started: closes its client

    return asyncio.run(build())


def test_worker_consumer_fetch_wait_comes_from_settings() -> None:
    assert _fetch_wait_of_worker_consumer(KafkaSettings(fetch_max_wait_ms=42)) == 42
    assert _fetch_wait_of_worker_consumer(KafkaSettings()) == 100


def test_state_directory_comes_from_settings(tmp_path: Path) -> None:
    state_dir = tmp_path / "not" / "yet"
    app = create_faust_app("state-dir-test", KafkaSettings(state_dir=state_dir, group_prefix="t"))
    assert Path(app.conf.datadir) == state_dir / "t-state-dir-test-data"
    app._create_directories()  # what faust does on start: it makes only the last level
    assert (state_dir / "t-state-dir-test-data").is_dir()
    # Without the setting faust keeps its own default, relative to the working directory.
    assert not Path(create_faust_app("state-dir-test", KafkaSettings()).conf.datadir).is_absolute()
