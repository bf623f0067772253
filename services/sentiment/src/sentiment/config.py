from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from feedback_shared.config import HttpSettings, KeyedServiceSettings, service_settings_config
from feedback_shared.events import MAX_TEXT_CHARS

#: The largest body a schema-valid ``POST /v1/score`` can take: a JSON encoder that escapes non-ASCII
#: writes a character outside the BMP as two ``\uXXXX`` escapes, 12 bytes, so a text of MAX_TEXT_CHARS
#: such characters is 1.2 MB, and the language (16 characters) and the keys fit in the rest. With the
#: shared 1 MB limit a valid request got 413 and an over-long text 413 instead of the 422 that names it
#: (schemathesis found it).
SCORE_BODY_BYTES = 12 * MAX_TEXT_CHARS + 4_096


class Settings(KeyedServiceSettings):
    model_config = service_settings_config("SENTIMENT_")

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8001))
    max_body_bytes: int = SCORE_BODY_BYTES
    #: Messages scored together (the embedding is batched), and how long to wait to fill a batch. A quiet
    #: stream's batches are the few messages of one wait, so the size only matters under a backlog: there
    #: 64 spends less per text than 32 (each encoder run and each batch's publish has a fixed cost), which
    #: counts most when the other stages share the cores. make bench's end-to-end phase alone (20,000
    #: events, scratch harness, one run each): 141-148 events/s at 32, 165-169 at 64, 171 at 128; the
    #: incident at 83 items/s: alert p99 1.23 s at 32, 0.97 s at 64.
    batch_size: int = Field(default=64, ge=1, le=512)
    batch_wait_s: float = Field(default=0.05, gt=0, le=5)
    #: Batches handled at once: the next is scored while the last waits for the broker's
    #: acknowledgements. Offsets are still committed in order.
    batches_in_flight: int = Field(default=2, ge=1, le=4)
    #: Embedding sessions run at once, one thread each (``E5Encoder``); None: one per core.
    embed_threads: int | None = None
    #: Threads of numpy's BLAS (the heads' matrix products) while the service runs. One: OpenBLAS's
    #: threads spin on after each small product and take the cores the encoder sessions run on.
    blas_threads: int = Field(default=1, ge=1, le=64)


@lru_cache
def get_settings() -> Settings:
    return Settings()
