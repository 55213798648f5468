"""The in-process store: dictionaries with expiry, bounded in size. One process only."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from server.store.base import (
    Admission,
    Limits,
    ModelCapacity,
    Reservation,
    StoredTrace,
    TraceSummary,
    UsageSnapshot,
)
from server.store.layout import counter_keys, holds_keys, model_keys
from server.store.memory_parts import Counters, ExpiringLRU, Holds, TraceShelf
from server.store.windows import Window


class MemoryStore:
    """:class:`~server.store.base.SharedStore` in this process (no I/O, never unavailable).

    Each operation runs without awaiting anything, so it is atomic under asyncio."""

    backend = "memory"
    in_process = True

    def __init__(
        self,
        *,
        cache_max_entries: int = 10_000,
        trace_max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache = ExpiringLRU(cache_max_entries, clock)
        self._traces = TraceShelf(trace_max_entries, clock)
        self._counters = Counters(clock)
        self._holds = Holds(clock)

    async def cache_get(self, key: str) -> bytes | None:
        return self._cache.get(key)

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        self._cache.put(key, value, ttl_s)

    async def admit(
        self,
        subject: str,
        limits: Limits,
        minute: Window,
        period: Window,
        *,
        reserve_usd: float = 0.0,
        hold_s: float = 600.0,
    ) -> Admission:
        requests_key, tokens_key, spend_key = counter_keys(subject, minute, period)
        holds = holds_keys(subject, period.id)[0]
        budget = limits.budget_usd
        if budget is not None:
            spend, held = self._counters.get(spend_key), self._holds.held(holds)
            if spend + held >= budget or (reserve_usd > 0 and spend + held + reserve_usd > budget):
                return Admission(False, "budget", spend, reserved_usd=held)
        tokens = self._counters.get(tokens_key)
        if limits.tokens_per_minute is not None and tokens >= limits.tokens_per_minute:
            return Admission(False, "tokens", tokens)
        requests = self._counters.get(requests_key)
        if limits.requests_per_minute is not None and requests >= limits.requests_per_minute:
            return Admission(False, "requests", requests)
        counted = self._counters.add(requests_key, 1, minute.ttl_s)
        if budget is None or reserve_usd <= 0:
            return Admission(True, None, counted)
        reservation = Reservation(uuid.uuid4().hex, period.id, reserve_usd)
        self._holds.add(holds, reservation.id, reserve_usd, hold_s)
        return Admission(True, None, counted, reservation=reservation)

    async def settle(
        self,
        subject: str,
        reservation: Reservation | None,
        minute: Window,
        period: Window,
        tokens: int,
        cost_usd: float,
    ) -> None:
        if reservation is not None:
            self._holds.release(holds_keys(subject, reservation.period_id)[0], reservation.id)
        _, tokens_key, spend_key = counter_keys(subject, minute, period)
        self._counters.add(tokens_key, tokens, minute.ttl_s)
        self._counters.add(spend_key, cost_usd, period.ttl_s)

    async def record_usage(
        self, subject: str, minute: Window, period: Window, tokens: int, cost_usd: float
    ) -> None:
        await self.settle(subject, None, minute, period, tokens, cost_usd)

    async def usage(self, subject: str, minute: Window, period: Window) -> UsageSnapshot:
        requests_key, tokens_key, spend_key = counter_keys(subject, minute, period)
        return UsageSnapshot(
            requests=int(self._counters.get(requests_key)),
            tokens=int(self._counters.get(tokens_key)),
            spend_usd=self._counters.get(spend_key),
            reserved_usd=self._holds.held(holds_keys(subject, period.id)[0]),
        )

    async def acquire_model_capacity(
        self,
        model: str,
        minute: Window,
        *,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        tokens_estimate: int,
    ) -> ModelCapacity:
        requests_key, tokens_key = model_keys(model, minute)
        if requests_per_minute is not None and (
            self._counters.get(requests_key) >= requests_per_minute
        ):
            return ModelCapacity(False, "requests", minute.retry_after_s)
        if tokens_per_minute is not None:
            tokens = self._counters.get(tokens_key)
            if tokens >= tokens_per_minute or (
                tokens > 0 and tokens + tokens_estimate > tokens_per_minute
            ):
                return ModelCapacity(False, "tokens", minute.retry_after_s)
        self._counters.add(requests_key, 1, minute.ttl_s)
        self._counters.add(tokens_key, tokens_estimate, minute.ttl_s)
        return ModelCapacity(True)

    async def record_model_tokens(self, model: str, minute: Window, tokens_delta: int) -> None:
        _, tokens_key = model_keys(model, minute)
        self._counters.add_existing(tokens_key, tokens_delta)

    async def put_trace(self, summary: TraceSummary, trace: bytes, ttl_s: float) -> None:
        self._traces.put(summary, trace, ttl_s)

    async def get_trace(self, request_id: str, owner: str | None) -> StoredTrace | None:
        return self._traces.get(request_id, owner)

    async def list_traces(
        self,
        owner: str | None,
        limit: int,
        *,
        profile: str | None = None,
        outcome: str | None = None,
    ) -> list[TraceSummary]:
        return self._traces.summaries(owner, limit, profile, outcome)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None
