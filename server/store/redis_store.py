"""The Redis store: shared by every replica, atomic limit updates, bounded and fail-fast.

Every operation runs under ``timeout_s`` (connect, read, and the wait for a pooled connection:
a ``BlockingConnectionPool`` of ``max_connections``). After a failure Redis is not tried
again for ``retry_interval_s``: meanwhile operations raise :class:`StoreUnavailable` at once,
so an outage costs at most one bounded wait per interval, not one per request. Failures are
reported to ``on_error(operation)`` (a metric) and logged at most once per interval.

Atomicity: admission is one Lua script (check budget, tokens and requests, then count the
request); usage is one MULTI transaction (INCRBY tokens + EXPIRE, INCRBYFLOAT spend + EXPIRE).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from server.store.base import (
    Admission,
    LimitKind,
    Limits,
    StoredTrace,
    StoreUnavailable,
    UsageSnapshot,
    counter_keys,
    decode_trace,
    encode_trace,
)
from server.store.windows import Window

logger = logging.getLogger("router_r1.store")

T = TypeVar("T")

# KEYS: requests this minute, tokens this minute, spend this period.
# ARGV: request limit, token limit, budget ("" = none), the minute keys' TTL in seconds.
_ADMIT = """
local spend = tonumber(redis.call('GET', KEYS[3]) or '0')
if ARGV[3] ~= '' and spend >= tonumber(ARGV[3]) then return {'budget', tostring(spend)} end
local tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[2] ~= '' and tokens >= tonumber(ARGV[2]) then return {'tokens', tostring(tokens)} end
local requests = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[1] ~= '' and requests >= tonumber(ARGV[1]) then
  return {'requests', tostring(requests)}
end
requests = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {'', tostring(requests)}
"""


def _arg(value: float | None) -> str:
    return "" if value is None else repr(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


class RedisStore:
    """:class:`~server.store.base.SharedStore` on Redis (``redis.asyncio``)."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "router-r1:",
        max_connections: int = 64,
        timeout_s: float = 0.25,
        retry_interval_s: float = 1.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._retry_interval_s = retry_interval_s
        self._on_error = on_error
        self._pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),  # one reconnect (a restarted Redis), then give up
        )
        self._redis = Redis(connection_pool=self._pool)
        self._admit_script = self._redis.register_script(_ADMIT)
        self._down_until = 0.0
        self._next_log = 0.0
        self.url = url

    def _key(self, name: str) -> str:
        return self._prefix + name

    async def _run(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        if now < self._down_until:
            raise StoreUnavailable("redis is unavailable (recent failure; retrying shortly)")
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                return await call()
        except (RedisError, OSError, TimeoutError) as exc:
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

    async def cache_get(self, key: str) -> bytes | None:
        async def call() -> bytes | None:
            return _bytes(await self._redis.get(self._key("cache:" + key)))

        return await self._run("cache_get", call)

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        async def call() -> None:
            await self._redis.set(self._key("cache:" + key), value, px=max(1, int(ttl_s * 1000)))

        await self._run("cache_put", call)

    async def admit(
        self, subject: str, limits: Limits, minute: Window, period: Window
    ) -> Admission:
        keys = [self._key(k) for k in counter_keys(subject, minute, period)]
        args = [
            _arg(limits.requests_per_minute),
            _arg(limits.tokens_per_minute),
            _arg(limits.budget_usd),
            str(minute.ttl_s),
        ]

        async def call() -> Any:
            return await self._admit_script(keys=keys, args=args)

        refused, used = await self._run("admit", call)
        kind = _text(refused)
        if not kind:
            return Admission(True, None, float(_text(used)))
        limit: LimitKind = (
            "budget" if kind == "budget" else ("tokens" if kind == "tokens" else "requests")
        )
        return Admission(False, limit, float(_text(used)))

    async def record_usage(
        self, subject: str, minute: Window, period: Window, tokens: int, cost_usd: float
    ) -> None:
        _, tokens_key, spend_key = (self._key(k) for k in counter_keys(subject, minute, period))

        async def call() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(tokens_key, tokens)
                pipe.expire(tokens_key, minute.ttl_s)
                pipe.incrbyfloat(spend_key, cost_usd)
                pipe.expire(spend_key, period.ttl_s)
                await pipe.execute()

        await self._run("record_usage", call)

    async def usage(self, subject: str, minute: Window, period: Window) -> UsageSnapshot:
        keys = [self._key(k) for k in counter_keys(subject, minute, period)]

        async def call() -> list[Any]:
            values: list[Any] = await self._redis.mget(keys)
            return values

        requests, tokens, spend = await self._run("usage", call)
        return UsageSnapshot(
            requests=int(_text(requests)) if requests is not None else 0,
            tokens=int(_text(tokens)) if tokens is not None else 0,
            spend_usd=float(_text(spend)) if spend is not None else 0.0,
        )

    async def put_trace(self, request_id: str, owner: str, trace: bytes, ttl_s: float) -> None:
        async def call() -> None:
            await self._redis.set(
                self._key("trace:" + request_id),
                encode_trace(owner, trace),
                ex=max(1, int(ttl_s)),
            )

        await self._run("put_trace", call)

    async def get_trace(self, request_id: str) -> StoredTrace | None:
        async def call() -> bytes | None:
            return _bytes(await self._redis.get(self._key("trace:" + request_id)))

        value = await self._run("get_trace", call)
        return None if value is None else decode_trace(value)

    async def ping(self) -> bool:
        async def call() -> bool:
            return bool(await self._redis.ping())

        try:
            return await self._run("ping", call)
        except StoreUnavailable:
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()
        await self._pool.aclose()
