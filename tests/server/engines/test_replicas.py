"""Replica selection: fewest episodes in flight among the available replicas, ties rotating."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from server.engines.breaker import CircuitBreaker
from server.engines.replicas import Replica, ReplicaSet, SelectionMode
from server.engines.vllm import VLLMEngine
from tests.fakes.replica_hosts import MODEL, ReplicaHosts, base_url


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def replica_set(
    client: httpx.AsyncClient,
    names: tuple[str, ...] = ("a", "b", "c"),
    *,
    selection: SelectionMode = "affinity",
    clock: Clock | None = None,
) -> ReplicaSet:
    clock = clock or Clock()
    replicas = [
        Replica(
            name,
            VLLMEngine(client, base_url=base_url(name), model=MODEL),
            CircuitBreaker(cooldown_s=5.0, clock=clock),
        )
        for name in names
    ]
    return ReplicaSet(replicas, session_header="x-session-id", selection=selection)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=ReplicaHosts.of(["a", "b", "c"])) as client:
        yield client


def pick(replicas: ReplicaSet, **kwargs: object) -> str:
    chosen = replicas.choose(**kwargs)  # type: ignore[arg-type]
    assert chosen is not None
    return chosen.name


def test_the_replica_with_fewest_episodes_in_flight_is_chosen(client: httpx.AsyncClient) -> None:
    replicas = replica_set(client)
    a, b, c = replicas.replicas
    a.in_flight, b.in_flight, c.in_flight = 3, 1, 2
    assert {pick(replicas) for _ in range(6)} == {"b"}


def test_ties_rotate(client: httpx.AsyncClient) -> None:
    replicas = replica_set(client)
    assert [pick(replicas) for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]


def test_an_open_breaker_or_a_failed_health_poll_takes_a_replica_out(
    client: httpx.AsyncClient,
) -> None:
    clock = Clock()
    replicas = replica_set(client, clock=clock)
    a, b, c = replicas.replicas
    a.breaker.record_failure()
    c.health_up = False
    assert {pick(replicas) for _ in range(4)} == {"b"}
    b.in_flight = 10  # even when loaded: the others are not available
    assert pick(replicas) == "b"
    clock.now += 5  # a's cooldown is over: half-open, one probe allowed
    assert pick(replicas) == "a"


def test_with_none_available_the_one_that_failed_longest_ago_is_tried(
    client: httpx.AsyncClient,
) -> None:
    clock = Clock()
    replicas = replica_set(client, clock=clock)
    a, b, c = replicas.replicas
    c.health_up = False
    b.breaker.record_failure()
    clock.now += 1
    a.breaker.record_failure()
    assert pick(replicas) == "b"  # opened first; a known-down health poll comes last
    assert pick(replicas, exclude={"b"}) == "a"
    assert pick(replicas, exclude={"a", "b"}) == "c"
    assert replicas.choose(exclude={"a", "b", "c"}) is None


def test_round_robin_ignores_load(client: httpx.AsyncClient) -> None:
    replicas = replica_set(client, selection="round_robin")
    replicas.replicas[0].in_flight = 50
    assert [pick(replicas) for _ in range(4)] == ["a", "b", "c", "a"]


def test_replica_names_must_be_distinct(client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="distinct"):
        replica_set(client, ("a", "a"))
    with pytest.raises(ValueError, match="at least one"):
        ReplicaSet([])


async def test_health_polls_mark_replicas_up_and_down() -> None:
    hosts = ReplicaHosts.of(["a", "b", "c"])
    hosts.down.add("b")
    hosts.fakes["c"].healthy = False
    async with httpx.AsyncClient(transport=hosts) as client:
        replicas = replica_set(client)
        assert [r.status()["health"] for r in replicas.replicas] == ["unknown"] * 3
        await replicas.poll_health(timeout_s=1.0)
        assert [r.health_up for r in replicas.replicas] == [True, False, False]
        status = replicas.status()
        assert status["a"] == {
            "up": True,
            "health": "up",
            "breaker": "closed",
            "breaker_opened": 0,
            "episodes_in_flight": 0,
        }
        assert (status["b"]["up"], status["b"]["health"]) == (False, "down")
        assert await replicas.ready()  # one is enough
        hosts.down.add("a")
        assert not await replicas.ready()
