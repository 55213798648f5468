"""The SharedStore contract, part 1: cache and key limits; every store behaves the same
(budget holds, model limits and traces: the other test_contract_* files)."""

from __future__ import annotations

import asyncio

import pytest

from server.store import Limits, SharedStore, Window

MINUTE = Window("m1", 30.0)
OTHER_MINUTE = Window("m2", 30.0)
PERIOD = Window("d1", 3600.0)


async def test_backend_names_itself(any_store: SharedStore) -> None:
    assert any_store.backend in ("memory", "redis")
    assert await any_store.ping() is True


async def test_cache_round_trip_and_miss(any_store: SharedStore) -> None:
    assert await any_store.cache_get("k") is None
    await any_store.cache_put("k", b"\x00value\xff", ttl_s=60)
    assert await any_store.cache_get("k") == b"\x00value\xff"
    assert await any_store.cache_get("other") is None


async def test_cache_entries_expire(any_store: SharedStore) -> None:
    await any_store.cache_put("short", b"v", ttl_s=0.2)
    assert await any_store.cache_get("short") == b"v"
    await asyncio.sleep(0.35)
    assert await any_store.cache_get("short") is None


async def test_no_limits_always_admits_and_counts_requests(any_store: SharedStore) -> None:
    for expected in (1, 2, 3):
        admission = await any_store.admit("k1", Limits(), MINUTE, PERIOD)
        assert admission.allowed
        assert admission.used == expected
    assert (await any_store.usage("k1", MINUTE, PERIOD)).requests == 3


async def test_requests_per_minute(any_store: SharedStore) -> None:
    limits = Limits(requests_per_minute=3)
    results = [await any_store.admit("k1", limits, MINUTE, PERIOD) for _ in range(5)]
    assert [r.allowed for r in results] == [True, True, True, False, False]
    assert results[3].limit == "requests"
    assert results[3].used == 3
    # a refused request is not counted, and the next minute starts afresh
    assert (await any_store.usage("k1", MINUTE, PERIOD)).requests == 3
    assert (await any_store.admit("k1", limits, OTHER_MINUTE, PERIOD)).allowed
    # another key has its own counters
    assert (await any_store.admit("k2", limits, MINUTE, PERIOD)).allowed


async def test_tokens_per_minute(any_store: SharedStore) -> None:
    limits = Limits(tokens_per_minute=100)
    assert (await any_store.admit("k1", limits, MINUTE, PERIOD)).allowed
    await any_store.record_usage("k1", MINUTE, PERIOD, tokens=60, cost_usd=0.0)
    assert (await any_store.admit("k1", limits, MINUTE, PERIOD)).allowed
    await any_store.record_usage("k1", MINUTE, PERIOD, tokens=40, cost_usd=0.0)
    refused = await any_store.admit("k1", limits, MINUTE, PERIOD)
    assert not refused.allowed
    assert refused.limit == "tokens"
    assert refused.used == 100
    assert (await any_store.admit("k1", limits, OTHER_MINUTE, PERIOD)).allowed


async def test_budget_per_period(any_store: SharedStore) -> None:
    limits = Limits(budget_usd=1.0)
    await any_store.record_usage("k1", MINUTE, PERIOD, tokens=10, cost_usd=0.6)
    assert (await any_store.admit("k1", limits, MINUTE, PERIOD)).allowed
    await any_store.record_usage("k1", OTHER_MINUTE, PERIOD, tokens=10, cost_usd=0.4)
    refused = await any_store.admit("k1", limits, OTHER_MINUTE, PERIOD)
    assert not refused.allowed
    assert refused.limit == "budget"
    assert refused.used == pytest.approx(1.0)
    usage = await any_store.usage("k1", OTHER_MINUTE, PERIOD)
    assert usage.spend_usd == pytest.approx(1.0)
    assert (await any_store.admit("k1", limits, MINUTE, Window("d2", 3600))).allowed


async def test_the_budget_is_checked_before_the_request_limit(any_store: SharedStore) -> None:
    limits = Limits(requests_per_minute=1, budget_usd=0.5)
    await any_store.record_usage("k1", MINUTE, PERIOD, tokens=0, cost_usd=0.5)
    assert (await any_store.admit("k1", limits, MINUTE, PERIOD)).limit == "budget"


async def test_concurrent_admissions_never_exceed_the_limit(any_store: SharedStore) -> None:
    limits = Limits(requests_per_minute=10)
    results = await asyncio.gather(
        *(any_store.admit("k1", limits, MINUTE, PERIOD) for _ in range(50))
    )
    assert sum(r.allowed for r in results) == 10


async def test_concurrent_spend_is_never_lost(any_store: SharedStore) -> None:
    await asyncio.gather(
        *(any_store.record_usage("k1", MINUTE, PERIOD, tokens=3, cost_usd=0.01) for _ in range(100))
    )
    usage = await any_store.usage("k1", MINUTE, PERIOD)
    assert usage.tokens == 300
    assert usage.spend_usd == pytest.approx(1.0)
