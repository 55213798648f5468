"""The in-process store: dictionaries with expiry, bounded in size. One process only."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from server.store.base import (
    Admission,
    Limits,
    StoredTrace,
    UsageSnapshot,
    counter_keys,
    decode_trace,
    encode_trace,
)
from server.store.windows import Window


class _ExpiringLRU:
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


class _Counters:
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

    def add(self, key: str, amount: float, ttl_s: float) -> float:
        now = self._clock()
        if now >= self._next_sweep:
            self._values = {k: v for k, v in self._values.items() if v[0] > now}
            self._next_sweep = now + 60
        value = self.get(key) + amount
        self._values[key] = (now + ttl_s, value)
        return value


class MemoryStore:
    """:class:`~server.store.base.SharedStore` in this process (no I/O, never unavailable)."""

    backend = "memory"

    def __init__(
        self,
        *,
        cache_max_entries: int = 10_000,
        trace_max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache = _ExpiringLRU(cache_max_entries, clock)
        self._traces = _ExpiringLRU(trace_max_entries, clock)
        self._counters = _Counters(clock)

    async def cache_get(self, key: str) -> bytes | None:
        return self._cache.get(key)

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        self._cache.put(key, value, ttl_s)

    async def admit(
        self, subject: str, limits: Limits, minute: Window, period: Window
    ) -> Admission:
        requests_key, tokens_key, spend_key = counter_keys(subject, minute, period)
        spend = self._counters.get(spend_key)
        if limits.budget_usd is not None and spend >= limits.budget_usd:
            return Admission(False, "budget", spend)
        tokens = self._counters.get(tokens_key)
        if limits.tokens_per_minute is not None and tokens >= limits.tokens_per_minute:
            return Admission(False, "tokens", tokens)
        requests = self._counters.get(requests_key)
        if limits.requests_per_minute is not None and requests >= limits.requests_per_minute:
            return Admission(False, "requests", requests)
        return Admission(True, None, self._counters.add(requests_key, 1, minute.ttl_s))

    async def record_usage(
        self, subject: str, minute: Window, period: Window, tokens: int, cost_usd: float
    ) -> None:
        _, tokens_key, spend_key = counter_keys(subject, minute, period)
        self._counters.add(tokens_key, tokens, minute.ttl_s)
        self._counters.add(spend_key, cost_usd, period.ttl_s)

    async def usage(self, subject: str, minute: Window, period: Window) -> UsageSnapshot:
        requests_key, tokens_key, spend_key = counter_keys(subject, minute, period)
        return UsageSnapshot(
            requests=int(self._counters.get(requests_key)),
            tokens=int(self._counters.get(tokens_key)),
            spend_usd=self._counters.get(spend_key),
        )

    async def put_trace(self, request_id: str, owner: str, trace: bytes, ttl_s: float) -> None:
        self._traces.put(request_id, encode_trace(owner, trace), ttl_s)

    async def get_trace(self, request_id: str) -> StoredTrace | None:
        value = self._traces.get(request_id)
        return None if value is None else decode_trace(value)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None
