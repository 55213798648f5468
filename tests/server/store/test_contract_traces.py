"""The SharedStore contract: traces per owner (another key reusing a request id never
replaces or reads the first key's), admin lookups, and listings of their summaries."""

from __future__ import annotations

import asyncio
import time

from server.store import SharedStore, TraceSummary
from tests.server.store.conftest import TRACE_MAX_ENTRIES

START = time.time()


def summary(
    request_id: str,
    owner: str,
    *,
    at: float = 0.0,
    profile: str = "router-r1",
    outcome: str = "answer",
) -> TraceSummary:
    return TraceSummary(
        request_id=request_id,
        created=START + at,
        key_id=owner,
        profile=profile,
        model="qwen-policy",
        outcome=outcome,
        routes=1,
        cost_usd=1e-5,
        latency_ms=12.5,
    )


async def test_traces_round_trip_with_owner(any_store: SharedStore) -> None:
    assert await any_store.get_trace("req-1", "team-a") is None
    assert await any_store.get_trace("req-1", None) is None
    await any_store.put_trace(summary("req-1", "team-a"), b'{"request_id": "req-1"}', ttl_s=60)
    for reader in ("team-a", None):  # the owner, and an admin
        stored = await any_store.get_trace("req-1", reader)
        assert stored is not None
        assert stored.owner == "team-a"
        assert stored.trace == b'{"request_id": "req-1"}'
    assert await any_store.get_trace("req-1", "team-b") is None


async def test_another_owner_reusing_a_request_id_gets_its_own_trace(
    any_store: SharedStore,
) -> None:
    await any_store.put_trace(summary("req-1", "team-a", at=1), b'"a"', ttl_s=60)
    await any_store.put_trace(summary("req-1", "team-b", at=2), b'"b"', ttl_s=60)
    mine = await any_store.get_trace("req-1", "team-a")
    theirs = await any_store.get_trace("req-1", "team-b")
    assert mine is not None
    assert mine.trace == b'"a"'
    assert theirs is not None
    assert theirs.trace == b'"b"'
    newest = await any_store.get_trace("req-1", None)  # an admin sees the newest
    assert newest is not None
    assert newest.owner == "team-b"
    # the same owner storing the id again replaces its own
    await any_store.put_trace(summary("req-1", "team-a", at=3), b'"a2"', ttl_s=60)
    again = await any_store.get_trace("req-1", "team-a")
    assert again is not None
    assert again.trace == b'"a2"'
    assert [s.key_id for s in await any_store.list_traces(None, 10)] == ["team-a", "team-b"]


async def test_traces_expire(any_store: SharedStore) -> None:
    await any_store.put_trace(summary("req-1", "team-a"), b"{}", ttl_s=1)
    assert await any_store.get_trace("req-1", "team-a") is not None
    assert len(await any_store.list_traces("team-a", 10)) == 1
    await asyncio.sleep(1.3)
    assert await any_store.get_trace("req-1", "team-a") is None
    assert await any_store.get_trace("req-1", None) is None
    assert await any_store.list_traces("team-a", 10) == []
    assert await any_store.list_traces(None, 10) == []


async def test_listings_are_newest_first_per_owner_and_filtered(any_store: SharedStore) -> None:
    stored = [
        summary("r0", "team-a", at=0),
        summary("r1", "team-b", at=1, outcome="turn_limit"),
        summary("r2", "team-a", at=2, profile="router-r1-cheap"),
        summary("r3", "team-a", at=3, outcome="turn_limit"),
        summary("r4", "team-b", at=4),
    ]
    for item in stored:
        await any_store.put_trace(item, b"{}", ttl_s=60)
    everyone = await any_store.list_traces(None, 10)
    assert [s.request_id for s in everyone] == ["r4", "r3", "r2", "r1", "r0"]
    assert everyone[0] == stored[4]  # the whole summary round-trips
    assert [s.request_id for s in await any_store.list_traces("team-a", 10)] == ["r3", "r2", "r0"]
    assert [s.request_id for s in await any_store.list_traces(None, 2)] == ["r4", "r3"]
    assert [s.request_id for s in await any_store.list_traces("team-a", 1)] == ["r3"]
    cheap = await any_store.list_traces(None, 10, profile="router-r1-cheap")
    assert [s.request_id for s in cheap] == ["r2"]
    limited = await any_store.list_traces("team-a", 10, outcome="turn_limit")
    assert [s.request_id for s in limited] == ["r3"]
    both = await any_store.list_traces(None, 10, profile="router-r1", outcome="turn_limit")
    assert [s.request_id for s in both] == ["r3", "r1"]
    assert await any_store.list_traces("team-c", 10) == []


async def test_listings_are_bounded(any_store: SharedStore) -> None:
    for i in range(TRACE_MAX_ENTRIES + 5):
        await any_store.put_trace(summary(f"r{i}", "team-a", at=i / 100), b"{}", ttl_s=60)
    for owner in ("team-a", None):
        listed = await any_store.list_traces(owner, 1000)
        assert len(listed) == TRACE_MAX_ENTRIES
        assert listed[0].request_id == f"r{TRACE_MAX_ENTRIES + 4}"
        assert listed[-1].request_id == "r5"
