"""The in-memory store's containers: an expiring LRU, expiring counters, budget holds, and the
trace shelf. All bounded in size or swept of what expired; one process, no locking (asyncio)."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from server.store.base import StoredTrace, TraceSummary

_SWEEP_INTERVAL_S = 60.0


class ExpiringLRU:
    """At most ``max_entries`` values, each until its expiry (least recently used evicted)."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._max = max_entries
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= self._clock():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        self._items[key] = (self._clock() + ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class Counters:
    """Numeric counters with expiry; expired ones are swept now and then."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._values: dict[str, tuple[float, float]] = {}
        self._next_sweep = 0.0

    def get(self, key: str) -> float:
        item = self._values.get(key)
        if item is None or item[0] <= self._clock():
            return 0.0
        return item[1]

    def exists(self, key: str) -> bool:
        item = self._values.get(key)
        return item is not None and item[0] > self._clock()

    def add(self, key: str, amount: float, ttl_s: float) -> float:
        now = self._clock()
        if now >= self._next_sweep:
            self._values = {k: v for k, v in self._values.items() if v[0] > now}
            self._next_sweep = now + _SWEEP_INTERVAL_S
        value = self.get(key) + amount
        self._values[key] = (now + ttl_s, value)
        return value

    def add_existing(self, key: str, amount: float) -> None:
        """Add to a live counter, keeping its expiry; a missing or expired one is left alone."""
        item = self._values.get(key)
        if item is not None and item[0] > self._clock():
            self._values[key] = (item[0], item[1] + amount)


class Holds:
    """Budget reservations: per holds key, reservation id -> (expiry, USD)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._holds: dict[str, dict[str, tuple[float, float]]] = {}
        self._next_sweep = 0.0

    def held(self, key: str) -> float:
        """USD held under ``key`` by reservations not expired (expired ones are dropped)."""
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        holds = self._holds.get(key)
        if not holds:
            return 0.0
        for expired in [rid for rid, (expiry, _) in holds.items() if expiry <= now]:
            del holds[expired]
        return sum(amount for _, amount in holds.values())

    def add(self, key: str, reservation_id: str, amount_usd: float, hold_s: float) -> None:
        self._holds.setdefault(key, {})[reservation_id] = (self._clock() + hold_s, amount_usd)

    def release(self, key: str, reservation_id: str) -> None:
        holds = self._holds.get(key)
        if holds is not None:
            holds.pop(reservation_id, None)
            if not holds:
                del self._holds[key]

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + _SWEEP_INTERVAL_S
        for key in list(self._holds):
            live = {rid: hold for rid, hold in self._holds[key].items() if hold[0] > now}
            if live:
                self._holds[key] = live
            else:
                del self._holds[key]


@dataclass(frozen=True)
class _Shelved:
    expires: float
    summary: TraceSummary
    trace: bytes


class TraceShelf:
    """At most ``max_entries`` traces keyed by (owner, request id), oldest stored evicted first,
    each until its expiry; with the owners of each request id, for an admin's lookup."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._max = max_entries
        self._clock = clock
        self._items: OrderedDict[tuple[str, str], _Shelved] = OrderedDict()
        self._owners: dict[str, set[str]] = {}  # request id -> the owners with a trace of it

    def put(self, summary: TraceSummary, trace: bytes, ttl_s: float) -> None:
        owner, request_id = summary.key_id, summary.request_id
        self._items[(owner, request_id)] = _Shelved(self._clock() + ttl_s, summary, trace)
        self._items.move_to_end((owner, request_id))
        self._owners.setdefault(request_id, set()).add(owner)
        while len(self._items) > self._max:
            (old_owner, old_request), _ = self._items.popitem(last=False)
            self._forget_owner(old_request, old_owner)

    def get(self, request_id: str, owner: str | None) -> StoredTrace | None:
        if owner is None:  # an admin: the newest (by ``created``) of that request id's traces
            live = [
                (item.summary.created, candidate)
                for candidate in list(self._owners.get(request_id, ()))
                if (item := self._live(candidate, request_id)) is not None
            ]
            return None if not live else self.get(request_id, max(live)[1])
        item = self._live(owner, request_id)
        return None if item is None else StoredTrace(owner=owner, trace=item.trace)

    def summaries(
        self, owner: str | None, limit: int, profile: str | None, outcome: str | None
    ) -> list[TraceSummary]:
        now = self._clock()
        matching = (
            item.summary
            for (item_owner, _), item in self._items.items()
            if item.expires > now
            and (owner is None or item_owner == owner)
            and (profile is None or item.summary.profile == profile)
            and (outcome is None or item.summary.outcome == outcome)
        )
        return heapq.nlargest(limit, matching, key=lambda summary: summary.created)

    def __len__(self) -> int:
        return len(self._items)

    def _live(self, owner: str, request_id: str) -> _Shelved | None:
        """The entry if not expired (an expired one is dropped)."""
        item = self._items.get((owner, request_id))
        if item is not None and item.expires <= self._clock():
            del self._items[(owner, request_id)]
            self._forget_owner(request_id, owner)
            return None
        return item

    def _forget_owner(self, request_id: str, owner: str) -> None:
        owners = self._owners.get(request_id)
        if owners is not None:
            owners.discard(owner)
            if not owners:
                del self._owners[request_id]
