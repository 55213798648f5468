"""The Redis store: shared by every replica, atomic limit updates, bounded and fail-fast.

``url`` names one Redis, a Redis Cluster or a Sentinel-managed primary (the forms:
:mod:`server.store.redis_connect`). Every operation runs under ``timeout_s`` (connect, read),
twice that in all, the wait for one of ``max_connections`` slots included; no command is
retried (at most once). After a failure Redis is not tried again for ``retry_interval_s``:
meanwhile operations raise :class:`StoreUnavailable` at once, so an outage (or a cluster
failover) costs at most one bounded wait per interval, not one per request. Failures are
reported to ``on_error(operation)`` (a metric) and logged at most once per interval.

Atomicity: admission (limits, the request count and a budget hold), settlement (release the
hold, add tokens and spend), usage and per-model capacity are each one Lua script
(:mod:`server.store.redis_scripts`) over keys of one hash slot (:mod:`server.store.layout`).
A trace and its summary and indexes are one non-transactional pipeline: a listing skips index
entries whose summary is gone. Indexes are trimmed to ``trace_max_entries`` and expire with
the traces; a listing reads pages of the index, one bounded call each.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import RedisClusterException, RedisError

from server.store.base import (
    Admission,
    LimitKind,
    Limits,
    ModelCapacity,
    Reservation,
    StoredTrace,
    StoreUnavailable,
    TraceSummary,
    UsageSnapshot,
)
from server.store.layout import (
    counter_keys,
    holds_keys,
    model_keys,
)
from server.store.redis_connect import RedisConnection, as_bytes, as_text, parse_redis_url
from server.store.redis_scripts import ADMIT, MODEL_CAPACITY, MODEL_TOKENS, SETTLE, USAGE
from server.store.redis_traces import RedisTraces
from server.store.windows import Window

logger = logging.getLogger("router_r1.store")

T = TypeVar("T")

# Redis failing, and redis-py's cluster client failing inside: during a failover it closes
# every connection (ClusterDownError) while other calls are connecting on them, which then
# fail on a connection torn down under them (AttributeError on its writer, seen here) or a
# slot map being rebuilt (KeyError, IndexError: redis-py issues 2437 and after).
_FAILURES = (
    RedisError,
    RedisClusterException,
    OSError,
    TimeoutError,
    AttributeError,
    KeyError,
    IndexError,
)


def _arg(value: float | None) -> str:
    return "" if value is None else repr(value)


def _limit(kind: str) -> LimitKind:
    return "budget" if kind == "budget" else ("tokens" if kind == "tokens" else "requests")


class RedisStore:
    """:class:`~server.store.base.SharedStore` on Redis (``redis.asyncio``)."""

    backend = "redis"
    in_process = False

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "router-r1:",
        max_connections: int = 64,
        timeout_s: float = 0.25,
        retry_interval_s: float = 1.0,
        trace_max_entries: int = 10_000,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        target = parse_redis_url(url)
        self.url = url
        self.mode = target.mode
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._retry_interval_s = retry_interval_s
        self._on_error = on_error
        self._connection = RedisConnection(
            target, timeout_s=timeout_s, max_connections=max_connections
        )
        self._redis = self._connection.client
        # Bounds the calls in flight, so no pool (one per cluster node) ever runs out.
        self._gate = asyncio.Semaphore(max_connections)
        self._traces = RedisTraces(self._connection, self._key, self._run, trace_max_entries)
        self._down_until = 0.0
        self._next_log = 0.0

    def _key(self, name: str) -> str:
        return self._prefix + name

    async def _eval(self, script: str, keys: list[str], args: list[str]) -> Any:
        """Run a Lua script. EVAL, not EVALSHA: a node that lacks the script (a new cluster
        node, a promoted replica) never answers NOSCRIPT to requests arriving all at once."""
        return await self._redis.eval(script, len(keys), *keys, *args)

    async def _run(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        if now < self._down_until:
            raise StoreUnavailable("redis is unavailable (recent failure; retrying shortly)")
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                async with self._gate:
                    await self._connection.ready()
                    return await call()
        except _FAILURES as exc:
            self._failed(operation, exc)
            raise StoreUnavailable(f"redis {operation} failed: {type(exc).__name__}") from exc

    def _failed(self, operation: str, exc: BaseException) -> None:
        now = time.monotonic()
        self._down_until = now + self._retry_interval_s
        if self._on_error is not None:
            self._on_error(operation)
        if now >= self._next_log:
            self._next_log = now + max(self._retry_interval_s, 10.0)
            logger.error(
                "redis %s failed (%s: %s); the cache is bypassed and limits fail as configured "
                "until it answers again (logged at most every %.0f s)",
                operation,
                type(exc).__name__,
                exc,
                max(self._retry_interval_s, 10.0),
            )

    # ------------------------------------------------------------------ cache

    async def cache_get(self, key: str) -> bytes | None:
        async def call() -> bytes | None:
            return as_bytes(await self._redis.get(self._key("cache:" + key)))

        return await self._run("cache_get", call)

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        async def call() -> None:
            await self._redis.set(self._key("cache:" + key), value, px=max(1, int(ttl_s * 1000)))

        await self._run("cache_put", call)

    # ------------------------------------------------------------------ key limits

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
        keys = [self._key(k) for k in counter_keys(subject, minute, period)]
        keys.extend(self._key(k) for k in holds_keys(subject, period.id))
        reservation_id = uuid.uuid4().hex
        args = [
            _arg(limits.requests_per_minute),
            _arg(limits.tokens_per_minute),
            _arg(limits.budget_usd),
            str(minute.ttl_s),
            repr(max(0.0, reserve_usd)),
            reservation_id,
            str(max(1, int(hold_s * 1000))),
            str(period.ttl_s),
        ]

        async def call() -> Any:
            return await self._eval(ADMIT, keys, args)

        refused, used, held, reserved = (as_text(v) for v in await self._run("admit", call))
        if refused:
            return Admission(False, _limit(refused), float(used), reserved_usd=float(held))
        reservation = Reservation(reserved, period.id, reserve_usd) if reserved else None
        return Admission(True, None, float(used), reservation=reservation)

    async def settle(
        self,
        subject: str,
        reservation: Reservation | None,
        minute: Window,
        period: Window,
        tokens: int,
        cost_usd: float,
    ) -> None:
        _, tokens_key, spend_key = (self._key(k) for k in counter_keys(subject, minute, period))
        held_in = reservation.period_id if reservation is not None else period.id
        keys = [tokens_key, spend_key, *(self._key(k) for k in holds_keys(subject, held_in))]
        args = [
            str(tokens),
            repr(cost_usd),
            str(minute.ttl_s),
            str(period.ttl_s),
            reservation.id if reservation is not None else "",
        ]

        async def call() -> None:
            await self._eval(SETTLE, keys, args)

        await self._run("settle" if reservation is not None else "record_usage", call)

    async def record_usage(
        self, subject: str, minute: Window, period: Window, tokens: int, cost_usd: float
    ) -> None:
        await self.settle(subject, None, minute, period, tokens, cost_usd)

    async def usage(self, subject: str, minute: Window, period: Window) -> UsageSnapshot:
        keys = [self._key(k) for k in counter_keys(subject, minute, period)]
        keys.extend(self._key(k) for k in holds_keys(subject, period.id))

        async def call() -> Any:
            return await self._eval(USAGE, keys, [])

        requests, tokens, spend, held = (as_text(v) for v in await self._run("usage", call))
        return UsageSnapshot(
            requests=int(requests) if requests else 0,
            tokens=int(tokens) if tokens else 0,
            spend_usd=float(spend) if spend else 0.0,
            reserved_usd=float(held),
        )

    # ------------------------------------------------------------------ model limits

    async def acquire_model_capacity(
        self,
        model: str,
        minute: Window,
        *,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        tokens_estimate: int,
    ) -> ModelCapacity:
        keys = [self._key(k) for k in model_keys(model, minute)]
        args = [
            _arg(requests_per_minute),
            _arg(tokens_per_minute),
            str(tokens_estimate),
            str(minute.ttl_s),
        ]

        async def call() -> Any:
            return await self._eval(MODEL_CAPACITY, keys, args)

        refused = as_text(await self._run("acquire_model_capacity", call))
        if not refused:
            return ModelCapacity(True)
        return ModelCapacity(
            False, "tokens" if refused == "tokens" else "requests", minute.retry_after_s
        )

    async def record_model_tokens(self, model: str, minute: Window, tokens_delta: int) -> None:
        _, tokens_key = model_keys(model, minute)

        async def call() -> None:
            await self._eval(MODEL_TOKENS, [self._key(tokens_key)], [str(tokens_delta)])

        await self._run("record_model_tokens", call)

    # ------------------------------------------------------------------ traces

    async def put_trace(self, summary: TraceSummary, trace: bytes, ttl_s: float) -> None:
        await self._traces.put(summary, trace, ttl_s)

    async def get_trace(self, request_id: str, owner: str | None) -> StoredTrace | None:
        return await self._traces.get(request_id, owner)

    async def list_traces(
        self,
        owner: str | None,
        limit: int,
        *,
        profile: str | None = None,
        outcome: str | None = None,
    ) -> list[TraceSummary]:
        return await self._traces.summaries(owner, limit, profile, outcome)

    # ------------------------------------------------------------------ lifecycle

    async def ping(self) -> bool:
        async def call() -> bool:
            return bool(await self._redis.ping())

        try:
            return await self._run("ping", call)
        except StoreUnavailable:
            return False

    async def aclose(self) -> None:
        await self._connection.aclose()
