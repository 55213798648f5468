"""The SharedStore contract: budget reservations (a request holds its worst-case cost from
admission to settlement, so concurrent requests cannot overshoot a budget)."""

from __future__ import annotations

import asyncio

import pytest

from server.store import Limits, SharedStore, Window

MINUTE = Window("m1", 30.0)
PERIOD = Window("d1", 3600.0)
BUDGET = Limits(budget_usd=1.0)


async def test_a_reservation_counts_against_the_budget_until_settled(
    any_store: SharedStore,
) -> None:
    first = await any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=0.6)
    assert first.allowed
    assert first.reservation is not None
    assert first.reservation.amount_usd == pytest.approx(0.6)
    assert (await any_store.usage("k1", MINUTE, PERIOD)).reserved_usd == pytest.approx(0.6)
    refused = await any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=0.6)
    assert not refused.allowed
    assert refused.limit == "budget"
    assert refused.used == pytest.approx(0.0)
    assert refused.reserved_usd == pytest.approx(0.6)
    fits = await any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=0.4)
    assert fits.allowed  # 0.6 + 0.4 is exactly the budget
    assert fits.reservation is not None
    # a request without a reservation is refused too: spend + holds have reached the budget
    assert (await any_store.admit("k1", BUDGET, MINUTE, PERIOD)).limit == "budget"
    await any_store.settle("k1", first.reservation, MINUTE, PERIOD, tokens=7, cost_usd=0.1)
    usage = await any_store.usage("k1", MINUTE, PERIOD)
    assert usage.reserved_usd == pytest.approx(0.4)
    assert usage.spend_usd == pytest.approx(0.1)
    assert usage.tokens == 7
    assert usage.requests == 2  # refused requests are not counted
    assert (await any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=0.5)).allowed
    assert not (await any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=0.01)).allowed


async def test_settling_twice_releases_once_and_adds_twice(any_store: SharedStore) -> None:
    admission = await any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=0.5)
    assert admission.reservation is not None
    await any_store.settle("k1", admission.reservation, MINUTE, PERIOD, tokens=1, cost_usd=0.2)
    await any_store.settle("k1", admission.reservation, MINUTE, PERIOD, tokens=1, cost_usd=0.2)
    usage = await any_store.usage("k1", MINUTE, PERIOD)
    assert usage.reserved_usd == 0.0
    assert usage.spend_usd == pytest.approx(0.4)


async def test_without_a_budget_nothing_is_reserved(any_store: SharedStore) -> None:
    admission = await any_store.admit(
        "k1", Limits(requests_per_minute=5), MINUTE, PERIOD, reserve_usd=3.0
    )
    assert admission.allowed
    assert admission.reservation is None
    assert (await any_store.usage("k1", MINUTE, PERIOD)).reserved_usd == 0.0
    await any_store.settle("k1", None, MINUTE, PERIOD, tokens=2, cost_usd=0.25)
    assert (await any_store.usage("k1", MINUTE, PERIOD)).spend_usd == pytest.approx(0.25)


async def test_a_reservation_larger_than_the_budget_is_refused(any_store: SharedStore) -> None:
    refused = await any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=1.5)
    assert refused.limit == "budget"
    # the budget still admits requests that fit, and post-paid ones
    assert (await any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=0.5)).allowed
    assert (await any_store.admit("k1", BUDGET, MINUTE, PERIOD)).allowed


async def test_an_abandoned_reservation_expires(any_store: SharedStore) -> None:
    abandoned = await any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=1.0, hold_s=0.3)
    assert abandoned.allowed
    assert not (await any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=0.1)).allowed
    await asyncio.sleep(0.45)
    assert (await any_store.usage("k1", MINUTE, PERIOD)).reserved_usd == 0.0
    assert (await any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=0.9)).allowed
    # settling the expired one late still adds what it really spent
    assert abandoned.reservation is not None
    await any_store.settle("k1", abandoned.reservation, MINUTE, PERIOD, tokens=0, cost_usd=0.05)
    usage = await any_store.usage("k1", MINUTE, PERIOD)
    assert usage.spend_usd == pytest.approx(0.05)
    assert usage.reserved_usd == pytest.approx(0.9)


async def test_a_reservation_is_released_in_its_own_period(any_store: SharedStore) -> None:
    admission = await any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=0.7)
    assert admission.reservation is not None
    next_period = Window("d2", 3600.0)  # the request ended after the period rolled over
    await any_store.settle("k1", admission.reservation, MINUTE, next_period, 3, cost_usd=0.2)
    assert (await any_store.usage("k1", MINUTE, PERIOD)).reserved_usd == 0.0
    assert (await any_store.usage("k1", MINUTE, next_period)).spend_usd == pytest.approx(0.2)


async def test_concurrent_reservations_never_overshoot_the_budget(any_store: SharedStore) -> None:
    admissions = await asyncio.gather(
        *(any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=0.1) for _ in range(50))
    )
    admitted = [a for a in admissions if a.allowed]
    assert len(admitted) == 10
    assert all(a.limit == "budget" for a in admissions if not a.allowed)
    # each spent half its reservation: settling frees the other half for new requests
    await asyncio.gather(
        *(
            any_store.settle("k1", a.reservation, MINUTE, PERIOD, tokens=1, cost_usd=0.05)
            for a in admitted
        )
    )
    usage = await any_store.usage("k1", MINUTE, PERIOD)
    assert usage.spend_usd == pytest.approx(0.5)
    assert usage.reserved_usd == pytest.approx(0.0)
    again = await asyncio.gather(
        *(any_store.admit("k1", BUDGET, MINUTE, PERIOD, reserve_usd=0.1) for _ in range(20))
    )
    assert sum(a.allowed for a in again) == 5
