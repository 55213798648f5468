"""The SharedStore contract: per-model requests and tokens per minute, counted at admission
with an estimate and corrected afterwards."""

from __future__ import annotations

import asyncio

from server.store import SharedStore, Window

MINUTE = Window("m1", 30.0)
OTHER_MINUTE = Window("m2", 30.0)
MODEL = "qwen/qwen2.5-7b-instruct"


async def acquire(
    store: SharedStore,
    rpm: int | None = None,
    tpm: int | None = None,
    estimate: int = 0,
    *,
    model: str = MODEL,
    minute: Window = MINUTE,
) -> bool:
    capacity = await store.acquire_model_capacity(
        model, minute, requests_per_minute=rpm, tokens_per_minute=tpm, tokens_estimate=estimate
    )
    return capacity.allowed


async def test_requests_per_minute_of_a_model(any_store: SharedStore) -> None:
    assert await acquire(any_store, rpm=2)
    assert await acquire(any_store, rpm=2)
    refused = await any_store.acquire_model_capacity(
        MODEL, MINUTE, requests_per_minute=2, tokens_per_minute=None, tokens_estimate=0
    )
    assert not refused.allowed
    assert refused.limit == "requests"
    assert refused.retry_after_s == MINUTE.retry_after_s
    assert await acquire(any_store, rpm=2, minute=OTHER_MINUTE)
    assert await acquire(any_store, rpm=2, model="another/model")


async def test_tokens_per_minute_count_the_estimate_and_its_correction(
    any_store: SharedStore,
) -> None:
    assert await acquire(any_store, tpm=100, estimate=60)
    refused = await any_store.acquire_model_capacity(
        MODEL, MINUTE, requests_per_minute=None, tokens_per_minute=100, tokens_estimate=60
    )
    assert not refused.allowed
    assert refused.limit == "tokens"
    await any_store.record_model_tokens(MODEL, MINUTE, 20 - 60)  # it used 20, not 60
    assert await acquire(any_store, tpm=100, estimate=60)  # 20 + 60
    assert not await acquire(any_store, tpm=100, estimate=30)  # 80 + 30
    await any_store.record_model_tokens(MODEL, MINUTE, 40)  # that one used 100, not 60
    assert not await acquire(any_store, tpm=100, estimate=0)  # 120: over the limit


async def test_a_call_larger_than_the_limit_runs_alone_in_its_minute(
    any_store: SharedStore,
) -> None:
    assert await acquire(any_store, tpm=100, estimate=500)
    assert not await acquire(any_store, tpm=100, estimate=1)
    assert await acquire(any_store, tpm=100, estimate=500, minute=OTHER_MINUTE)


async def test_a_correction_of_a_minute_gone_is_dropped(any_store: SharedStore) -> None:
    await any_store.record_model_tokens(MODEL, OTHER_MINUTE, 1000)  # never counted there
    assert await acquire(any_store, tpm=10, estimate=5, minute=OTHER_MINUTE)
    assert await acquire(any_store, tpm=10, estimate=5, minute=OTHER_MINUTE)  # 5 + 5


async def test_concurrent_calls_never_exceed_a_model_limit(any_store: SharedStore) -> None:
    results = await asyncio.gather(*(acquire(any_store, rpm=10, tpm=10_000) for _ in range(50)))
    assert sum(results) == 10
