"""Key budgets with reservations: concurrent requests against one budget never overshoot it.

Each request reserves its worst case at admission and settles its real cost at the end. The
scenario is one a post-paid budget overshoots: twenty slow requests at once, each costing about
three quarters of its worst case, against a budget of two and a half worst cases (post-paid,
all twenty are admitted while nothing is spent yet, and spend about fifteen worst cases).

Two ways: the gateway's wiring against a reserving ledger with the store's semantics (every
reservation checked against the request's real cost), and the real stores (memory and Redis).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from router_model.registry import Registry, parse_registry
from server.auth.access import AccessControl, Caller
from server.errors import APIError
from server.store.base import Reservation
from tests.fakes.registry import PROFILE, REGISTRY_FILE
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM
from tests.server.api.conftest import GatewayFactory
from tests.server.operations.conftest import KEY_A, key_entry, keys_json, spend_of
from tests.servers.redis_server import RedisServer

MIXTRAL_ID = "mistralai/mixtral-8x22b-instruct-v0.1"
ROUTE = "<think>Ask.</think>\n<search> Mixtral-8x22B-Instruct:who wrote it </search>"
ANSWER = "<think>Now I know.</think>\n<answer> Leo Tolstoy </answer>"
QUESTION = [{"role": "user", "content": "Who wrote the novel War and Peace?"}]
REQUESTS = 20


def script(prompt: str) -> str:
    return ANSWER if "OBS-MARK" in prompt else ROUTE


def registry() -> Registry:
    """One route to the dearest pool model, its query short, its reply long."""
    data = yaml.safe_load(REGISTRY_FILE.read_text())
    (profile,) = [p for p in data["profiles"] if p["name"] == PROFILE]
    profile["limits"] = {**profile["limits"], "max_routes": 1, "max_turn_tokens": 48}
    return Registry(parse_registry(yaml.safe_dump(data), "<budget>", environ={}))


def upstream() -> FakeUpstream:
    reply = UpstreamScript(reply="OBS-MARK Tolstoy.", completion_tokens=512, delay_s=0.2)
    return FakeUpstream({MIXTRAL_ID: reply})


async def _burst(gw: Any) -> list[Any]:
    body = {"model": "router-r1", "messages": QUESTION}
    headers = {"authorization": f"Bearer {KEY_A}"}
    return list(
        await asyncio.gather(
            *(
                gw.http.post("/v1/chat/completions", json=body, headers=headers)
                for _ in range(REQUESTS)
            )
        )
    )


@dataclass
class ReservingLedger:
    """A key budget with reservations, as the shared store keeps one (admission and
    settlement each atomic), standing in for the store's reservations in the wiring test."""

    budget: float
    spent: float = 0.0
    reserved: float = 0.0
    reservations: dict[str, float] = field(default_factory=dict)
    settled: list[tuple[float, float]] = field(default_factory=list)  # (reserved, cost)
    ids: itertools.count[int] = field(default_factory=itertools.count)

    async def admit(
        self, caller: Caller, *, reserve_usd: float = 0.0, hold_s: float | None = None
    ) -> Reservation | None:
        assert hold_s is not None
        assert hold_s > 0
        if self.spent + self.reserved + reserve_usd > self.budget:
            raise APIError(402, "budget", code="budget_exceeded")
        reservation = Reservation(f"r{next(self.ids)}", "period", reserve_usd)
        self.reserved += reserve_usd
        self.reservations[reservation.id] = reserve_usd
        return reservation

    async def settle(
        self, caller: Caller, reservation: Reservation | None, tokens: int, cost_usd: float
    ) -> None:
        self.spent += cost_usd
        if reservation is None:  # refused at admission: nothing was held, nothing spent
            assert cost_usd == 0
            return
        amount = self.reservations.pop(reservation.id)
        self.reserved -= amount
        self.settled.append((amount, cost_usd))


async def test_the_gateway_reserves_each_worst_case_and_settles_the_real_cost(
    gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = ReservingLedger(budget=0.0)
    monkeypatch.setattr(AccessControl, "admit", ledger.admit)
    monkeypatch.setattr(AccessControl, "settle", ledger.settle)
    keys = keys_json(key_entry("team-a", KEY_A, budget_usd=1.0))
    async with gateway(FakeVLLM(script), upstream(), registry=registry(), api_keys=keys) as gw:
        ledger.budget = 1.0  # one request first, to learn its worst case
        (first,) = await asyncio.gather(_burst_one(gw))
        assert first.status_code == 200
        ((worst, cost),) = ledger.settled
        assert 0.6 * worst < cost <= worst  # an upper bound, and not a loose one
        ledger.budget = ledger.spent + 2.5 * worst
        responses = await _burst(gw)
    statuses = [response.status_code for response in responses]
    assert set(statuses) == {200, 402}
    assert ledger.spent <= ledger.budget
    assert ledger.reserved == pytest.approx(0.0, abs=1e-12)  # every reservation settled
    assert all(cost <= amount for amount, cost in ledger.settled)
    # post-paid, every request would have been admitted, and spent:
    assert REQUESTS * cost > ledger.budget - cost


async def _burst_one(gw: Any) -> Any:
    body = {"model": "router-r1", "messages": QUESTION}
    headers = {"authorization": f"Bearer {KEY_A}"}
    return await gw.http.post("/v1/chat/completions", json=body, headers=headers)


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_concurrent_requests_never_overshoot_a_budget(
    gateway: GatewayFactory, request: pytest.FixtureRequest, backend: str
) -> None:
    settings: dict[str, Any] = {}
    if backend == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        settings["redis_url"] = redis.url
    probe_keys = keys_json(key_entry("team-a", KEY_A, budget_usd=100.0))
    async with gateway(
        FakeVLLM(script), upstream(), registry=registry(), api_keys=probe_keys, **settings
    ) as gw:
        first = await _burst_one(gw)
        cost = first.json()["router"]["totals"]["cost_usd"]
    budget = 2.5 * cost / 0.75  # about two and a half worst cases
    keys = keys_json(key_entry("team-b-budget", KEY_A, budget_usd=budget))
    async with gateway(
        FakeVLLM(script), upstream(), registry=registry(), api_keys=keys, **settings
    ) as gw:
        responses = await _burst(gw)
        spent = await spend_of(gw, KEY_A)
    statuses = [response.status_code for response in responses]
    assert 402 in statuses
    assert 200 in statuses
    assert spent <= budget
    assert REQUESTS * cost > budget  # post-paid would have overshot
