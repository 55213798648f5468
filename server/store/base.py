"""The shared-state contract: the sub-query cache, limit counters, budget reservations, per-model
rate limits, and stored traces with their summaries.

Two implementations pass the same contract tests (tests/server/store): :class:`MemoryStore`
(one process, the default) and :class:`RedisStore` (shared by every replica: one Redis, a Redis
Cluster, or a Sentinel-managed primary). Every operation is bounded: a store that cannot answer
raises :class:`StoreUnavailable` quickly, never hangs; callers decide what that means (the
cache is bypassed, limits fail open or closed, a trace is dropped).

Limits of a key (a *subject*), all checked and counted atomically by :meth:`SharedStore.admit`:

- requests and tokens per minute: refused when the minute's count has reached the limit;
- a budget per period: refused when ``spent + reserved >= budget``, or, for a request that
  reserves ``reserve_usd``, when ``spent + reserved + reserve_usd > budget``.

Post-paid (no reservation): :meth:`record_usage` adds tokens and spend after the request, so
concurrent requests admitted before the budget was reached may overshoot it by what they spend.
Pre-paid: admission reserves the request's worst-case cost (an :class:`Admission` carries the
:class:`Reservation`); :meth:`settle` releases it and adds the real cost in one step, so
concurrent requests cannot overshoot; a reservation never settled (its replica died) stops
counting after ``hold_s``.

Per-model limits (a registry model's requests and tokens per minute, across replicas):
:meth:`acquire_model_capacity` counts a request and its estimated tokens, or refuses;
:meth:`record_model_tokens` corrects the estimate afterwards, in the same minute.

Traces are stored per owner (the key id that made the request): another key reusing a request
id gets its own trace, never replaces or reads the first. Each trace has a
:class:`TraceSummary`, listed newest first (by ``created``) per owner or for everyone (admin);
indexes and traces are bounded (``trace_max_entries``) and expire with the trace TTL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

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
    """Whether a request may start; when not, which limit refused it and its counter.

    ``used`` is the minute's request count when admitted, else the refusing counter (for the
    budget: the spend, with ``reserved_usd`` held by requests in flight). ``reservation`` is
    set when the request reserved part of a budget."""

    allowed: bool
    limit: LimitKind | None = None
    used: float = 0.0
    reserved_usd: float = 0.0
    reservation: Reservation | None = None


@dataclass(frozen=True)
class UsageSnapshot:
    """A subject's counters in the given minute and budget period (``reserved_usd``: held by
    reservations not yet settled nor expired)."""

    requests: int = 0
    tokens: int = 0
    spend_usd: float = 0.0
    reserved_usd: float = 0.0


@dataclass(frozen=True)
class ModelCapacity:
    """Whether a call to a model may go ahead now; when not, which per-minute limit refused it
    and the seconds until the minute ends."""

    allowed: bool
    limit: Literal["requests", "tokens"] | None = None
    retry_after_s: int = 0


class TraceSummary(BaseModel):
    """What a trace listing shows of one request (stored next to its trace, as JSON)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: str
    created: float  # Unix seconds, when the request started
    key_id: str  # the owner: the key id that made the request
    mode: Literal["episode", "passthrough"] = "episode"
    profile: str | None = None
    model: str | None = None
    outcome: str | None = None
    status: int = 200
    routes: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0


@dataclass(frozen=True)
class StoredTrace:
    owner: str  # the key id that made the request
    trace: bytes  # the ``router`` trace, JSON


class SharedStore(Protocol):
    """State shared by the replicas of one deployment (or by nothing, in memory); see the
    module docstring for the semantics every implementation keeps."""

    backend: str  # "memory" | "redis"
    in_process: bool
    """Every call completes without waiting on anything (the memory store): a cancellation
    cannot land inside one, so callers need not shield their writes in a task."""

    async def cache_get(self, key: str) -> bytes | None: ...

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None: ...

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
        """Check the limits and count the request, atomically; with ``reserve_usd > 0`` and a
        budget, also reserve that much for ``hold_s`` (the admission carries the reservation;
        without a budget nothing is reserved)."""
        ...

    async def settle(
        self,
        subject: str,
        reservation: Reservation | None,
        minute: Window,
        period: Window,
        tokens: int,
        cost_usd: float,
    ) -> None:
        """Release ``reservation`` (if still held) and add the real tokens and cost, atomically;
        ``reservation=None`` is :meth:`record_usage`."""
        ...

    async def record_usage(
        self, subject: str, minute: Window, period: Window, tokens: int, cost_usd: float
    ) -> None: ...

    async def usage(self, subject: str, minute: Window, period: Window) -> UsageSnapshot: ...

    async def acquire_model_capacity(
        self,
        model: str,
        minute: Window,
        *,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        tokens_estimate: int,
    ) -> ModelCapacity:
        """Count one call and its estimated tokens in ``model``'s minute, or refuse when the
        minute's requests reached the limit or its tokens plus the estimate would pass it (a
        call is always allowed in a minute that has no tokens yet, however large: it could
        never run otherwise)."""
        ...

    async def record_model_tokens(self, model: str, minute: Window, tokens_delta: int) -> None:
        """Correct the minute's tokens by ``actual - estimate``; a minute already gone is left
        alone (``minute`` is the one the capacity was acquired in)."""
        ...

    async def put_trace(self, summary: TraceSummary, trace: bytes, ttl_s: float) -> None:
        """Keep the trace of ``summary.request_id`` for its owner ``summary.key_id`` (the same
        owner's earlier trace under that id is replaced; another owner's never)."""
        ...

    async def get_trace(self, request_id: str, owner: str | None) -> StoredTrace | None:
        """``owner``'s trace of that request; ``owner=None`` (an admin): the newest trace of
        that request id, whoever's."""
        ...

    async def list_traces(
        self,
        owner: str | None,
        limit: int,
        *,
        profile: str | None = None,
        outcome: str | None = None,
    ) -> list[TraceSummary]:
        """Up to ``limit`` summaries, newest first: ``owner``'s, or everyone's (None), only
        those of ``profile``/``outcome`` when given."""
        ...

    async def ping(self) -> bool:
        """Whether the store answers now (never raises)."""
        ...

    async def aclose(self) -> None: ...
