"""Who is calling, and may they: bearer-key authentication, limits and budgets, spend.

401 without a valid key (unless no keys are configured: open mode); 429 with ``Retry-After``
when the key's requests or tokens per minute are used up; 402 when its budget for the period
is spent. Counters live in the shared store, so every replica enforces the same limits. When
the store is unavailable, ``fail_open`` decides: admit without limits, or 503.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.auth.keys import ApiKey, KeyRing
from server.errors import APIError
from server.metrics.metrics import Metrics
from server.store.base import Reservation, SharedStore, StoreUnavailable, UsageSnapshot
from server.store.windows import budget_window, minute_window

logger = logging.getLogger("router_r1.auth")

ANONYMOUS_ID = "anonymous"


@dataclass(frozen=True)
class Caller:
    """The authenticated caller; ``key`` is None in open mode."""

    id: str
    key: ApiKey | None = None

    @property
    def admin(self) -> bool:
        return self.key is not None and self.key.admin

    def may_read(self, owner: str) -> bool:
        return self.admin or owner == self.id


def _unauthenticated(message: str, code: str) -> APIError:
    return APIError(401, message, code=code, headers={"www-authenticate": "Bearer"})


class AccessControl:
    def __init__(
        self,
        keys: KeyRing,
        store: SharedStore,
        metrics: Metrics,
        *,
        fail_open: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self._store = store
        self._metrics = metrics
        self._fail_open = fail_open
        self._clock = clock

    @property
    def open_mode(self) -> bool:
        return self.keys.open_mode

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller of a request with this ``Authorization`` header (401 if not valid)."""
        if self.keys.open_mode:
            return Caller(ANONYMOUS_ID)
        scheme, _, presented = (authorization or "").partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            self._metrics.rejections("unauthenticated").inc()
            raise _unauthenticated(
                "You didn't provide an API key: send it as 'Authorization: Bearer <key>'.",
                "missing_api_key",
            )
        key = self.keys.lookup(presented)
        if key is None:
            self._metrics.rejections("unauthenticated").inc()
            raise _unauthenticated("Incorrect API key provided.", "invalid_api_key")
        return Caller(key.id, key)

    async def admit(
        self, caller: Caller, *, reserve_usd: float = 0.0, hold_s: float | None = None
    ) -> Reservation | None:
        """Count the request against the caller's limits; 429/402 when one is used up.

        ``reserve_usd``/``hold_s``: the request's worst case, to hold from the key's budget
        until :meth:`settle` (the reservation is returned). Interim: this store has no budget
        reservations yet (the shared store's reservations replace this method), so nothing is
        held, None is returned and spend is counted when the request settles."""
        key = caller.key
        if key is None or not key.limits.any:
            return None
        now = self._clock()
        minute, period = minute_window(now), budget_window(now, key.budget_period)
        try:
            admission = await self._store.admit(key.id, key.limits, minute, period)
        except StoreUnavailable as exc:
            if self._fail_open:
                return None
            self._metrics.rejections("store_unavailable").inc()
            raise APIError(
                503,
                "Limits cannot be checked right now (shared store unavailable); retry shortly.",
                code="limits_unavailable",
                headers={"retry-after": "1"},
            ) from exc
        if admission.allowed:
            return None
        limit = admission.limit or "requests"
        self._metrics.rejections(limit).inc()
        if limit == "budget":
            raise APIError(
                402,
                f"The budget of API key {key.id!r} is spent: ${admission.used:.6f} of "
                f"${key.budget_usd:g} this {key.budget_period}.",
                code="budget_exceeded",
                headers={"retry-after": str(period.retry_after_s)},
            )
        what = (
            f"{key.requests_per_minute} requests"
            if limit == "requests"
            else f"{key.tokens_per_minute} tokens"
        )
        raise APIError(
            429,
            f"Rate limit reached for API key {key.id!r}: {what} per minute. "
            f"Retry after {minute.retry_after_s} s.",
            code="rate_limit_exceeded",
            headers={"retry-after": str(minute.retry_after_s)},
        )

    async def settle(
        self, caller: Caller, reservation: Reservation | None, tokens: int, cost_usd: float
    ) -> None:
        """Release the request's reservation and add what it really spent; never raises.
        Interim (no store reservations yet): :meth:`record`."""
        await self.record(caller, tokens, cost_usd)

    async def record(self, caller: Caller, tokens: int, cost_usd: float) -> None:
        """Add a finished (or failed) request's tokens and spend; never raises."""
        key = caller.key
        if key is None:
            return
        now = self._clock()
        try:
            await self._store.record_usage(
                key.id,
                minute_window(now),
                budget_window(now, key.budget_period),
                tokens,
                cost_usd,
            )
        except StoreUnavailable:
            logger.debug("spend of %s not recorded: store unavailable", key.id)

    async def usage(self, caller: Caller) -> UsageSnapshot:
        """The caller's counters now (raises StoreUnavailable)."""
        key = caller.key
        if key is None:
            return UsageSnapshot()
        now = self._clock()
        return await self._store.usage(
            key.id, minute_window(now), budget_window(now, key.budget_period)
        )
