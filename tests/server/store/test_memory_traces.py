"""server/store/memory_parts.py TraceShelf: what it keeps is invisible to the garbage
collector once collected (a measured shortcut: kept traces must not slow every collection)."""

from __future__ import annotations

import gc

from server.store.base import TraceSummary
from server.store.memory_parts import TraceShelf


def _summary(index: int, owner: str = "k1", **fields: object) -> TraceSummary:
    return TraceSummary(request_id=f"req-{index}", created=1000.0 + index, key_id=owner, **fields)  # type: ignore[arg-type]


def test_kept_traces_are_not_tracked_by_the_collector() -> None:
    shelf = TraceShelf(100, clock=lambda: 0.0)
    for index in range(50):
        shelf.put(_summary(index, profile="p", model=None, routes=index), b"{}", ttl_s=60)
    gc.collect()
    assert not gc.is_tracked(shelf._items[("k1", "req-7")])
    assert all(not gc.is_tracked(owners) for owners in shelf._owners.values())


def test_summaries_come_back_whole_newest_first_and_filtered() -> None:
    shelf = TraceShelf(100, clock=lambda: 0.0)
    for index in range(5):
        outcome = "answer" if index % 2 else "error"
        shelf.put(_summary(index, profile="p", outcome=outcome, cost_usd=index / 10), b"{}", 60)
    shelf.put(_summary(9, owner="k2", profile="q"), b"{}", 60)
    listed = shelf.summaries("k1", 10, profile=None, outcome=None)
    assert [s.request_id for s in listed] == [f"req-{i}" for i in (4, 3, 2, 1, 0)]
    assert listed[0] == _summary(4, profile="p", outcome="error", cost_usd=0.4)
    assert [s.request_id for s in shelf.summaries(None, 10, None, "answer")] == ["req-3", "req-1"]
    assert [s.key_id for s in shelf.summaries(None, 1, "q", None)] == ["k2"]


def test_an_admin_lookup_finds_the_newest_owner_and_eviction_forgets_owners() -> None:
    shelf = TraceShelf(2, clock=lambda: 0.0)
    shelf.put(_summary(1, owner="a"), b"first", 60)
    shelf.put(TraceSummary(request_id="req-1", created=2000.0, key_id="b"), b"second", 60)
    found = shelf.get("req-1", None)
    assert found is not None
    assert (found.owner, found.trace) == ("b", b"second")
    shelf.put(_summary(2), b"x", 60)  # evicts a's
    assert shelf.get("req-1", "a") is None
    assert shelf._owners["req-1"] == ("b",)
