"""Who is calling, and may they: bearer-key authentication, limits and budgets, spend.

401 without a valid key (unless no keys are configured: open mode); 429 with ``Retry-After``
when the key's requests or tokens per minute are used up; 402 when its budget for the period
is spent, or cannot cover the worst-case cost a request reserves. Counters live in the shared
store, so every replica enforces the same limits. When the store is unavailable, ``fail_open``
decides: admit without limits (and without a reservation), or 503.

Post-paid: ``admit(caller)`` then ``record(caller, tokens, cost)``. Pre-paid: ``reservation =
admit(caller, reserve_usd=worst_case)`` then ``settle(caller, reservation, tokens, cost)``; a
reservation never settled stops counting after ``hold_s`` (the request's deadline + margin).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.auth.keys import ApiKey, KeyRing
from server.errors import APIError
from server.metrics.metrics import Metrics
from server.store.base import Admission, Reservation, SharedStore, StoreUnavailable, UsageSnapshot
from server.store.windows import budget_window, minute_window

logger = logging.getLogger("router_r1.auth")

ANONYMOUS_ID = "anonymous"
DEFAULT_HOLD_S = 900.0  # a reservation's life when the caller names none


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
        hold_s: float = DEFAULT_HOLD_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self._store = store
        self._metrics = metrics
        self._fail_open = fail_open
        self._hold_s = hold_s
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

    @staticmethod
    def holds_budget(caller: Caller) -> bool:
        """Whether admitting this caller's requests reserves their worst-case cost (its key
        has a budget): otherwise nobody needs the worst case, and it is not computed."""
        key = caller.key
        return key is not None and key.limits.budget_usd is not None

    async def admit(
        self, caller: Caller, *, reserve_usd: float = 0.0, hold_s: float | None = None
    ) -> Reservation | None:
        """Count the request against the caller's limits; 429/402 when one is used up.

        With ``reserve_usd`` (the request's worst-case cost) and a budget, that much is held
        until :meth:`settle` (or ``hold_s``): the reservation, else None."""
        key = caller.key
        if key is None or not key.limits.any:
            return None
        now = self._clock()
        minute, period = minute_window(now), budget_window(now, key.budget_period)
        try:
            admission = await self._store.admit(
                key.id,
                key.limits,
                minute,
                period,
                reserve_usd=reserve_usd,
                hold_s=self._hold_s if hold_s is None else hold_s,
            )
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
            return admission.reservation
        limit = admission.limit or "requests"
        self._metrics.rejections(limit).inc()
        if limit == "budget":
            raise APIError(
                402,
                _budget_message(key.id, key.budget_usd or 0.0, admission, reserve_usd)
                + f" this {key.budget_period}.",
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
        """Release a request's reservation and add what it really spent; never raises (when
        the store is unavailable the spend is lost and the reservation expires)."""
        key = caller.key
        if key is None:
            return
        now = self._clock()
        try:
            await self._store.settle(
                key.id,
                reservation,
                minute_window(now),
                budget_window(now, key.budget_period),
                tokens,
                cost_usd,
            )
        except StoreUnavailable:
            logger.debug("spend of %s not settled: store unavailable", key.id)

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


def _budget_message(key_id: str, budget: float, admission: Admission, reserve_usd: float) -> str:
    """Why the budget refused a request (the period is added by the caller)."""
    spent = f"${admission.used:.6f} spent"
    if admission.reserved_usd > 0:
        spent += f" and ${admission.reserved_usd:.6f} held by requests in flight"
    left = budget - admission.used - admission.reserved_usd
    if reserve_usd > 0 and left > 0:
        return (
            f"The budget of API key {key_id!r} cannot cover this request: its worst-case cost "
            f"${reserve_usd:.6f} is more than the ${left:.6f} left ({spent} of ${budget:g})"
        )
    return f"The budget of API key {key_id!r} is spent: {spent} of ${budget:g}"
