"""The in-memory store's containers: an expiring LRU, expiring counters, budget holds, and the
trace shelf. All bounded in size or swept of what expired; one process, no locking (asyncio)."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable
from operator import itemgetter
from typing import Any

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


# A shelved trace is one flat tuple of atoms: (expires, the trace's JSON, then the summary's
# field values). CPython's collector stops tracking such tuples after their first collection, so
# 10,000 kept traces add nothing to the cost of each later collection; summary models and
# dataclasses (5 tracked objects each) made every full collection of a busy gateway take
# ~15 ms and a passthrough request ~20 µs more CPU (bench/bench_proxy.py).
_Shelved = tuple[Any, ...]
_ROW = 2  # where the summary's values start
_SUMMARY_FIELDS = tuple(TraceSummary.model_fields)
_CREATED = _ROW + _SUMMARY_FIELDS.index("created")
_PROFILE = _ROW + _SUMMARY_FIELDS.index("profile")
_OUTCOME = _ROW + _SUMMARY_FIELDS.index("outcome")


def _summary(item: _Shelved) -> TraceSummary:
    return TraceSummary(**dict(zip(_SUMMARY_FIELDS, item[_ROW:], strict=True)))


class TraceShelf:
    """At most ``max_entries`` traces keyed by (owner, request id), oldest stored evicted first,
    each until its expiry; with the owners of each request id, for an admin's lookup."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._max = max_entries
        self._clock = clock
        self._items: OrderedDict[tuple[str, str], _Shelved] = OrderedDict()
        # request id -> the owners with a trace of it (a tuple: untracked, as above)
        self._owners: dict[str, tuple[str, ...]] = {}

    def put(self, summary: TraceSummary, trace: bytes, ttl_s: float) -> None:
        owner, request_id = summary.key_id, summary.request_id
        # the summary's values in field order (a frozen model's __dict__)
        self._items[(owner, request_id)] = (
            self._clock() + ttl_s,
            trace,
            *summary.__dict__.values(),
        )
        self._items.move_to_end((owner, request_id))
        owners = self._owners.get(request_id, ())
        if owner not in owners:
            self._owners[request_id] = (*owners, owner)
        while len(self._items) > self._max:
            (old_owner, old_request), _ = self._items.popitem(last=False)
            self._forget_owner(old_request, old_owner)

    def get(self, request_id: str, owner: str | None) -> StoredTrace | None:
        if owner is None:  # an admin: the newest (by ``created``) of that request id's traces
            live = [
                (item[_CREATED], candidate)
                for candidate in self._owners.get(request_id, ())
                if (item := self._live(candidate, request_id)) is not None
            ]
            return None if not live else self.get(request_id, max(live)[1])
        item = self._live(owner, request_id)
        return None if item is None else StoredTrace(owner=owner, trace=item[1])

    def summaries(
        self, owner: str | None, limit: int, profile: str | None, outcome: str | None
    ) -> list[TraceSummary]:
        now = self._clock()
        matching = (
            item
            for (item_owner, _), item in self._items.items()
            if item[0] > now
            and (owner is None or item_owner == owner)
            and (profile is None or item[_PROFILE] == profile)
            and (outcome is None or item[_OUTCOME] == outcome)
        )
        newest = heapq.nlargest(limit, matching, key=itemgetter(_CREATED))
        return [_summary(item) for item in newest]

    def __len__(self) -> int:
        return len(self._items)

    def _live(self, owner: str, request_id: str) -> _Shelved | None:
        """The entry if not expired (an expired one is dropped)."""
        item = self._items.get((owner, request_id))
        if item is not None and item[0] <= self._clock():
            del self._items[(owner, request_id)]
            self._forget_owner(request_id, owner)
            return None
        return item

    def _forget_owner(self, request_id: str, owner: str) -> None:
        owners = tuple(o for o in self._owners.get(request_id, ()) if o != owner)
        if owners:
            self._owners[request_id] = owners
        else:
            self._owners.pop(request_id, None)
