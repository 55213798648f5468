"""The shared-state interface: the sub-query cache, limit counters, spend, and stored traces.

Two implementations pass the same contract tests (tests/server/store): :class:`MemoryStore`
(one process, the default) and :class:`RedisStore` (shared by every replica). Every operation
is bounded: a store that cannot answer raises :class:`StoreUnavailable` quickly, never hangs;
callers decide what that means (the cache is bypassed, limits fail open or closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from server.store.windows import Window

LimitKind = Literal["requests", "tokens", "budget"]


class StoreUnavailable(Exception):
    """The shared store could not be reached or did not answer in time."""


@dataclass(frozen=True)
class Limits:
    """One key's limits; ``None`` = unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    budget_usd: float | None = None

    @property
    def any(self) -> bool:
        return (
            self.requests_per_minute is not None
            or self.tokens_per_minute is not None
            or self.budget_usd is not None
        )


@dataclass(frozen=True)
class Reservation:
    """Part of a budget held for one admitted request until it is settled or ``hold_s`` ends.

    ``period_id`` names the budget period it was taken in (settling releases it there)."""

    id: str
    period_id: str
    amount_usd: float


@dataclass(frozen=True)
class Admission:
    """Whether a request may start; when not, which limit refused it and its counter."""

    allowed: bool
    limit: LimitKind | None = None
    used: float = 0.0


@dataclass(frozen=True)
class UsageSnapshot:
    """A subject's counters in the given minute and budget period."""

    requests: int = 0
    tokens: int = 0
    spend_usd: float = 0.0


@dataclass(frozen=True)
class StoredTrace:
    owner: str  # the key id that made the request
    trace: bytes  # the ``router`` trace, JSON


class SharedStore(Protocol):
    """State shared by the replicas of one deployment (or by nothing, in memory).

    Limits are checked and counted atomically: :meth:`admit` refuses when the period's spend
    has reached the budget, the minute's tokens the token limit, or the minute's requests the
    request limit, and otherwise counts the request, all in one step. :meth:`record_usage` adds
    tokens and spend after the request (post-paid: concurrent requests admitted before the
    budget was reached may overshoot it by what they spend).
    """

    backend: str  # "memory" | "redis"

    async def cache_get(self, key: str) -> bytes | None: ...

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def admit(
        self, subject: str, limits: Limits, minute: Window, period: Window
    ) -> Admission: ...

    async def record_usage(
        self, subject: str, minute: Window, period: Window, tokens: int, cost_usd: float
    ) -> None: ...

    async def usage(self, subject: str, minute: Window, period: Window) -> UsageSnapshot: ...

    async def put_trace(self, request_id: str, owner: str, trace: bytes, ttl_s: float) -> None: ...

    async def get_trace(self, request_id: str) -> StoredTrace | None: ...

    async def ping(self) -> bool:
        """Whether the store answers now (never raises)."""
        ...

    async def aclose(self) -> None: ...


def counter_keys(subject: str, minute: Window, period: Window) -> tuple[str, str, str]:
    """Store keys of (requests this minute, tokens this minute, spend this period)."""
    return (
        f"lim:{subject}:{minute.id}:req",
        f"lim:{subject}:{minute.id}:tok",
        f"lim:{subject}:{period.id}:usd",
    )


def encode_trace(owner: str, trace: bytes) -> bytes:
    """``owner`` newline ``trace`` (key ids never contain a newline)."""
    return owner.encode() + b"\n" + trace


def decode_trace(value: bytes) -> StoredTrace:
    owner, _, trace = value.partition(b"\n")
    return StoredTrace(owner=owner.decode(), trace=trace)
