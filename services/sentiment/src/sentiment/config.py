from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from feedback_shared.config import HttpSettings, KeyedServiceSettings, service_settings_config


class Settings(KeyedServiceSettings):
    model_config = service_settings_config("SENTIMENT_")

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8001))
    #: Messages scored together (the embedding is batched), and how long to wait to fill a batch.
    batch_size: int = 32
    batch_wait_s: float = 0.05
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
