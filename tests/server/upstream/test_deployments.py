"""Deployments: which one gets a call (healthy, weighted, fewest in flight), a retry going to
another one, breakers opening and probing through the pool, per-deployment ids and prices."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest

from router_model.registry import ModelSpec, Pricing, Registry
from server.upstream import UpstreamPool, UpstreamUnavailableError
from server.upstream.breaker import BreakerPolicy, BreakerState
from server.upstream.deployments import Deployments
from tests.server.upstream.helpers import FAST, completion, deployed_registry, json_response

TWO = (("a", "http://a.test/v1"), ("b", "http://b.test/v1"))
USAGE = {"prompt_tokens": 1000, "completion_tokens": 100}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Hosts:
    """A MockTransport handler: per host, a status to answer (or an exception to raise)."""

    def __init__(self, **behaviour: int | Exception) -> None:
        self.behaviour = behaviour
        self.hits: Counter[str] = Counter()
        self.models: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host.split(".")[0]
        self.hits[host] += 1
        self.models.append(orjson.loads(request.content)["model"])
        answer = self.behaviour.get(host, 200)
        if isinstance(answer, Exception):
            raise answer
        if answer != 200:
            return json_response(answer, {"error": {"message": f"{host} failed"}})
        return json_response(200, completion(f"from {host}", USAGE))


def model_of(registry: Registry) -> ModelSpec:
    return registry.models[0]


def pool_for(
    registry: Registry, hosts: Hosts, clock: Clock | None = None, **settings: Any
) -> tuple[UpstreamPool, list[tuple[str, str, BreakerState]]]:
    changes: list[tuple[str, str, BreakerState]] = []
    pool = UpstreamPool(
        lambda: registry,
        FAST.model_copy(update=settings),
        transport=httpx.MockTransport(hosts),
        on_breaker_change=lambda m, d, s: changes.append((m, d, s)),
        clock=clock or Clock(),
    )
    return pool, changes


# ----------------------------------------------------------------------------- selection


def test_idle_deployments_share_calls_by_weight() -> None:
    registry = deployed_registry(*TWO, weights=(3.0, 1.0))
    deployments = Deployments(BreakerPolicy(), rand=random.Random(7))
    picks = Counter(deployments.choose(model_of(registry), set()).name for _ in range(4000))  # type: ignore[union-attr]
    assert 0.70 < picks["a"] / 4000 < 0.80


def test_the_deployment_with_fewest_calls_in_flight_per_weight_is_chosen() -> None:
    registry = deployed_registry(*TWO, ("c", "http://c.test/v1"), weights=(2.0, 1.0, 1.0))
    model = model_of(registry)
    deployments = Deployments(BreakerPolicy())
    a, b, c = deployments.slots(model)
    a.in_flight, b.in_flight, c.in_flight = 3, 1, 2  # per weight: 1.5, 1, 2
    assert deployments.choose(model, set()) is b
    b.in_flight = 4  # per weight: 1.5, 4, 2
    assert deployments.choose(model, set()) is a


def test_a_retry_goes_to_a_deployment_not_tried_yet() -> None:
    registry = deployed_registry(*TWO)
    model = model_of(registry)
    deployments = Deployments(BreakerPolicy())
    a, b = deployments.slots(model)
    a.in_flight = 0
    b.in_flight = 10  # busier, but the only one not tried
    assert deployments.choose(model, {"a"}) is b
    assert deployments.has_other(model, {"a"})
    assert deployments.choose(model, {"a", "b"}) is a  # both tried: the least loaded again
    assert not deployments.has_other(model, {"a", "b"})


def test_open_breakers_are_skipped_and_all_open_is_none() -> None:
    registry = deployed_registry(*TWO)
    model = model_of(registry)
    clock = Clock()
    deployments = Deployments(BreakerPolicy(failures=1, cooldown_s=10), clock=clock)
    a, b = deployments.slots(model)
    a.breaker.failure()
    assert all(deployments.choose(model, set()) is b for _ in range(20))
    clock.now = 4
    b.breaker.failure()
    assert deployments.choose(model, set()) is None
    assert deployments.retry_after_s(model) == 6.0  # a's cooldown ends first
    assert deployments.states() == {"Multi": {"a": "open", "b": "open"}}


def test_state_survives_a_reload_unless_the_target_changed() -> None:
    registry = deployed_registry(*TWO, weights=(1.0, 1.0))
    deployments = Deployments(BreakerPolicy(failures=1))
    a, b = deployments.slots(model_of(registry))
    a.breaker.failure()
    reweighted = deployed_registry(*TWO, weights=(5.0, 1.0))
    a2, b2 = deployments.slots(model_of(reweighted))
    assert (a2, b2) == (a, b)
    assert a2.deployment.weight == 5.0
    assert a2.breaker.state == "open"
    moved = deployed_registry(("a", "http://elsewhere.test/v1"), TWO[1])
    a3, _ = deployments.slots(model_of(moved))
    assert a3.breaker.state == "open"  # same endpoint name and upstream id: same target
    renamed = model_of(registry).model_copy(
        update={
            "deployments": (
                model_of(registry).deployments[0].model_copy(update={"upstream_model": "other"}),
                model_of(registry).deployments[1],
            )
        }
    )
    a4, _ = deployments.slots(renamed)
    assert a4.breaker.state == "closed"  # another upstream model: a new deployment


# ----------------------------------------------------------------------------- through the pool


async def test_each_deployment_gets_its_own_upstream_id_and_price() -> None:
    registry = deployed_registry(
        *TWO, weights=(1e6, 1e-6), pricing=(None, Pricing(input_per_1m=0.5, output_per_1m=0.5))
    )
    hosts = Hosts()
    pool, _ = pool_for(registry, hosts)
    model = model_of(registry)
    async with pool:
        first = await pool.route_call(model, "q", max_tokens=4)
        pool.deployments.slots(model)[0].in_flight = 10**9  # push the next call to b
        second = await pool.chat(model, {"messages": [{"role": "user", "content": "q"}]})
    assert hosts.models == ["m-a", "m-b"]
    assert (first.deployment, first.text) == ("a", "from a")
    assert first.cost_usd == pytest.approx((1000 * 1.0 + 100 * 2.0) / 1e6)  # the model's
    assert second.deployment == "b"
    assert second.cost_usd == pytest.approx((1000 * 0.5 + 100 * 0.5) / 1e6)  # b's own


async def test_a_connect_failure_is_retried_at_once_on_the_other_deployment() -> None:
    registry = deployed_registry(*TWO, weights=(1e6, 1e-6))
    hosts = Hosts(a=httpx.ConnectError("refused"))
    slow_backoff = {"backoff_base_s": 60.0, "backoff_cap_s": 60.0}  # a sleep would time out
    pool, _ = pool_for(registry, hosts, **slow_backoff)
    async with pool:
        reply = await pool.route_call(model_of(registry), "q", max_tokens=4)
    assert (reply.status, reply.attempts, reply.deployment) == ("ok", 2, "b")
    assert hosts.hits == {"a": 1, "b": 1}


async def test_a_failing_deployment_is_cut_off_then_probed_after_the_cooldown() -> None:
    registry = deployed_registry(*TWO, weights=(1e6, 1e-6))
    hosts = Hosts(a=500)
    clock = Clock()
    pool, changes = pool_for(registry, hosts, clock, breaker_failures=2, breaker_cooldown_s=30)
    model = model_of(registry)
    async with pool:
        for _ in range(2):  # a 500 is not retried: each call fails on a
            reply = await pool.route_call(model, "q", max_tokens=4)
            assert (reply.status, reply.deployment) == ("http_error", "a")
        assert pool.breaker_states() == {"Multi": {"a": "open", "b": "closed"}}
        for _ in range(3):
            reply = await pool.route_call(model, "q", max_tokens=4)
            assert (reply.status, reply.deployment) == ("ok", "b")
        assert hosts.hits["a"] == 2  # nothing more was sent to a while open
        clock.now += 30
        hosts.behaviour["a"] = 200
        probe = await pool.route_call(model, "q", max_tokens=4)
        assert (probe.status, probe.deployment) == ("ok", "a")
        assert pool.breaker_states()["Multi"]["a"] == "closed"
    assert [c for c in changes if c[1] == "a"] == [
        ("Multi", "a", "closed"),
        ("Multi", "a", "open"),
        ("Multi", "a", "half_open"),
        ("Multi", "a", "closed"),
    ]


async def test_every_breaker_open_refuses_without_a_call() -> None:
    registry = deployed_registry(TWO[0])
    hosts = Hosts(a=httpx.ConnectError("refused"))
    clock = Clock()
    pool, _ = pool_for(registry, hosts, clock, breaker_failures=1, breaker_cooldown_s=20)
    model = model_of(registry)
    async with pool:
        first = await pool.route_call(model, "q", max_tokens=4)
        assert first.status == "connect_error"
        sent = hosts.hits["a"]
        clock.now += 5
        refused = await pool.route_call(model, "q", max_tokens=4)
        with pytest.raises(UpstreamUnavailableError) as caught:
            await pool.chat(model, {"messages": []})
    assert hosts.hits["a"] == sent
    assert (refused.status, refused.attempts) == ("unavailable", 0)
    assert refused.error is not None
    assert "circuit breaker open" in refused.error
    assert caught.value.status_code == 503
    assert caught.value.retry_after_s == pytest.approx(15.0)


async def test_4xx_answers_do_not_count_against_a_deployment() -> None:
    registry = deployed_registry(TWO[0])
    pool, _ = pool_for(registry, Hosts(a=400), breaker_failures=1)
    async with pool:
        for _ in range(3):
            reply = await pool.route_call(model_of(registry), "q", max_tokens=4)
            assert reply.http_status == 400
    assert pool.breaker_states() == {"Multi": {"a": "closed"}}
