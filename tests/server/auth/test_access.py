"""AccessControl: admission with budget reservations, settlement, and a store that is down."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.auth import AccessControl, KeyRing, hash_key
from server.auth.keys import ApiKey
from server.errors import APIError
from server.metrics import Metrics
from server.store import MemoryStore, StoreUnavailable

KEY = "rr1-key-of-team-a"
BEARER = f"Bearer {KEY}"


def access_with(store: Any = None, *, fail_open: bool = True, **limits: Any) -> AccessControl:
    key = ApiKey(id="team-a", sha256=hash_key(KEY), budget_period="day", **limits)
    return AccessControl(
        KeyRing([key]), store or MemoryStore(), Metrics(), fail_open=fail_open, hold_s=60
    )


class DownStore:
    """A store that never answers."""

    backend = "redis"

    async def admit(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("down")

    async def settle(self, *args: Any, **kwargs: Any) -> None:
        raise StoreUnavailable("down")

    async def record_usage(self, *args: Any, **kwargs: Any) -> None:
        raise StoreUnavailable("down")


async def test_a_reservation_is_held_until_settled() -> None:
    access = access_with(budget_usd=1.0)
    caller = access.authenticate(BEARER)
    reservation = await access.admit(caller, reserve_usd=0.6)
    assert reservation is not None
    assert reservation.amount_usd == pytest.approx(0.6)
    with pytest.raises(APIError) as refused:
        await access.admit(caller, reserve_usd=0.6)
    assert refused.value.status_code == 402
    assert refused.value.code == "budget_exceeded"
    assert "cannot cover this request" in refused.value.message
    assert "$0.600000 held by requests in flight" in refused.value.message
    assert (await access.usage(caller)).reserved_usd == pytest.approx(0.6)
    await access.settle(caller, reservation, tokens=10, cost_usd=0.1)
    usage = await access.usage(caller)
    assert usage.reserved_usd == 0.0
    assert usage.spend_usd == pytest.approx(0.1)
    assert usage.tokens == 10
    assert await access.admit(caller, reserve_usd=0.9) is not None  # 0.1 + 0.9 fits


async def test_a_reservation_never_settled_expires() -> None:
    access = access_with(budget_usd=1.0)
    caller = access.authenticate(BEARER)
    assert await access.admit(caller, reserve_usd=1.0, hold_s=0.2) is not None
    with pytest.raises(APIError) as refused:
        await access.admit(caller)  # post-paid: refused while the budget is all held
    assert "is spent" in refused.value.message
    await asyncio.sleep(0.3)
    assert await access.admit(caller, reserve_usd=0.5) is not None


async def test_without_a_budget_nothing_is_reserved() -> None:
    access = access_with(requests_per_minute=5)
    caller = access.authenticate(BEARER)
    assert await access.admit(caller, reserve_usd=2.0) is None
    await access.settle(caller, None, tokens=3, cost_usd=0.5)  # settling None is recording
    assert (await access.usage(caller)).spend_usd == pytest.approx(0.5)


async def test_open_mode_admits_everyone_without_reservations() -> None:
    access = AccessControl(KeyRing(), MemoryStore(), Metrics())
    caller = access.authenticate(None)
    assert await access.admit(caller, reserve_usd=1.0) is None
    await access.settle(caller, None, tokens=1, cost_usd=1.0)  # nothing to count


async def test_a_store_that_is_down_fails_open_or_closed() -> None:
    open_access = access_with(DownStore(), budget_usd=1.0)
    caller = open_access.authenticate(BEARER)
    assert await open_access.admit(caller, reserve_usd=0.5) is None  # admitted, nothing held
    await open_access.settle(caller, None, tokens=1, cost_usd=0.1)  # never raises
    closed = access_with(DownStore(), fail_open=False, budget_usd=1.0)
    with pytest.raises(APIError) as refused:
        await closed.admit(closed.authenticate(BEARER), reserve_usd=0.5)
    assert refused.value.status_code == 503
    assert refused.value.code == "limits_unavailable"
