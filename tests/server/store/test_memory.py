"""What only the in-memory store does: bounded sizes (Redis bounds by TTL and maxmemory)."""

from __future__ import annotations

from server.store import MemoryStore, TraceSummary


async def test_cache_keeps_the_most_recently_used_entries() -> None:
    store = MemoryStore(cache_max_entries=2)
    await store.cache_put("a", b"1", 60)
    await store.cache_put("b", b"2", 60)
    assert await store.cache_get("a") == b"1"  # a is now the most recently used
    await store.cache_put("c", b"3", 60)
    assert await store.cache_get("b") is None
    assert await store.cache_get("a") == b"1"
    assert await store.cache_get("c") == b"3"


async def test_traces_are_bounded() -> None:
    store = MemoryStore(trace_max_entries=3)
    for i in range(5):
        await store.put_trace(TraceSummary(request_id=f"r{i}", created=i, key_id="k"), b"{}", 60)
    assert await store.get_trace("r0", "k") is None
    assert await store.get_trace("r1", None) is None
    assert await store.get_trace("r4", "k") is not None
