"""ModelRateLimits: a registry model's requests and tokens per minute, across replicas."""

from __future__ import annotations

from typing import Any

from router_model.registry import ModelSpec
from server.operations.model_limits import ModelRateLimits
from server.store import MemoryStore, StoreUnavailable
from tests.fakes.registry import default_registry

NOW = 60.0 * 29_166_666 + 15  # 15 s into a minute


def model(**limits: Any) -> ModelSpec:
    spec = default_registry().models[0]
    return spec.model_copy(update={"limits": spec.limits.model_copy(update=limits)})


class DownStore:
    backend = "redis"

    async def acquire_model_capacity(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("down")


async def test_a_model_without_limits_is_never_counted() -> None:
    store = MemoryStore()
    limits = ModelRateLimits(store, clock=lambda: NOW)
    ticket = await limits.acquire(model(), tokens_estimate=10**9)
    assert ticket.allowed
    assert not ticket.counted
    await limits.finished(ticket, tokens=5)


async def test_requests_per_minute_refuse_until_the_next_minute() -> None:
    now = [NOW]
    limits = ModelRateLimits(MemoryStore(), clock=lambda: now[0])
    spec = model(requests_per_minute=2)
    assert (await limits.acquire(spec, 10)).allowed
    assert (await limits.acquire(spec, 10)).allowed
    refused = await limits.acquire(spec, 10)
    assert not refused.allowed
    assert refused.capacity.limit == "requests"
    assert refused.retry_after_s == 45
    now[0] += 45
    assert (await limits.acquire(spec, 10)).allowed


async def test_the_estimate_is_corrected_with_the_real_tokens() -> None:
    limits = ModelRateLimits(MemoryStore(), clock=lambda: NOW)
    spec = model(tokens_per_minute=1000)
    first = await limits.acquire(spec, 800)
    assert first.counted
    assert not (await limits.acquire(spec, 800)).allowed
    await limits.finished(first, tokens=150)  # the call used far less than its estimate
    second = await limits.acquire(spec, 800)
    assert second.allowed  # 150 + 800


async def test_a_store_that_is_down_fails_open_or_closed() -> None:
    spec = model(requests_per_minute=1)
    opened = await ModelRateLimits(DownStore(), clock=lambda: NOW).acquire(spec, 10)  # type: ignore[arg-type]
    assert opened.allowed
    assert not opened.counted
    closed = ModelRateLimits(DownStore(), fail_open=False, clock=lambda: NOW)  # type: ignore[arg-type]
    refused = await closed.acquire(spec, 10)
    assert not refused.allowed
    assert refused.retry_after_s == 1
