"""A profile served by two policy replicas, through the gateway: traces, /ready, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import openai
from fastapi import FastAPI

from router_model.registry import Registry
from server.app import create_app
from server.deps import STATE_KEY
from server.settings import Settings
from server.state import AppState
from tests.fakes.replica_hosts import ReplicaHosts, replica_registry
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.servers.in_process import sdk_client

QWEN = "qwen/qwen2.5-7b-instruct"
QUESTION = [{"role": "user", "content": "Who wrote the novel War and Peace?"}]
ROUTE = "<think>I should ask.</think>\n<search> Qwen2.5-7B-Instruct:who wrote it </search>"
ANSWER = "<think>Now I know.</think>\n<answer> Leo Tolstoy </answer>"


def script(prompt: str) -> str:
    return ANSWER if "OBS-ONE" in prompt else ROUTE


@dataclass
class Replicas:
    hosts: ReplicaHosts
    client: openai.AsyncOpenAI
    http: httpx2.AsyncClient
    app: FastAPI


@asynccontextmanager
async def gateway(registry: Registry | None = None, **settings: Any) -> AsyncIterator[Replicas]:
    hosts = ReplicaHosts.of(["a", "b"], script)
    upstream = FakeUpstream({QWEN: UpstreamScript(reply="OBS-ONE Tolstoy wrote it.")})
    defaults: dict[str, Any] = {"engine_health_interval_s": 0, "upstream_backoff_base_s": 0.001}
    app = create_app(
        Settings.from_flat({**defaults, **settings}),
        registry=registry or replica_registry(["a", "b"]),
        engine_transport=hosts,
        upstream_transport=httpx.ASGITransport(app=upstream.app),
    )
    async with sdk_client(app) as (client, http):
        yield Replicas(hosts, client, http, app)


def metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{"):
            series, _, value = line.rpartition(" ")
            found = ",".join(sorted(series[len(name) + 1 : -1].split(",")))
            if found == wanted:
                return float(value)
    return None


async def test_an_episode_stays_on_one_replica_and_names_itself_to_it() -> None:
    async with gateway() as gw:
        raw = await gw.client.chat.completions.with_raw_response.create(
            model="router-r1", messages=QUESTION
        )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Leo Tolstoy"
    steps = completion.model_extra["router"]["steps"]
    (replica,) = {step["replica"] for step in steps}
    episode = [seen for seen in gw.hosts.requests if "x-session-id" in seen.headers]
    assert {seen.host for seen in episode} == {replica}
    assert {seen.headers["x-session-id"] for seen in episode} == {raw.headers["x-request-id"]}


async def test_concurrent_episodes_use_both_replicas_each_staying_on_one() -> None:
    async def one(gw: Replicas) -> set[str]:
        completion = await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
        return {step["replica"] for step in completion.model_extra["router"]["steps"]}

    async with gateway() as gw:
        used = await asyncio.gather(*(one(gw) for _ in range(4)))
    assert all(len(replicas) == 1 for replicas in used)
    assert set().union(*used) == {"a", "b"}


async def test_a_replica_that_dies_mid_episode_is_failed_over_and_counted() -> None:
    async with gateway() as gw:
        hosts = gw.hosts

        def a_dies(prompt: str) -> str:
            hosts.down.add("a")
            return script(prompt)

        hosts.fakes["a"].set_script(a_dies)  # the first episode is pinned to a
        completion = await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
        metrics = (await gw.http.get("/metrics")).text
    assert completion.choices[0].message.content == "Leo Tolstoy"
    steps = completion.model_extra["router"]["steps"]
    assert [step["replica"] for step in steps] == ["a", "b"]
    assert [step["failover_from"] for step in steps] == [[], ["a"]]
    failovers = metric(
        metrics, "router_r1_policy_engine_failovers_total", profile="router-r1", replica="a"
    )
    assert failovers == 1.0


async def test_ready_and_metrics_show_each_replica() -> None:
    async with gateway() as gw:
        gw.hosts.down.add("b")
        ready = await gw.http.get("/ready")
        metrics = (await gw.http.get("/metrics")).text
        assert ready.status_code == 200  # one replica serving is enough
        replicas = ready.json()["policy_replicas"]["router-r1"]
        assert (replicas["a"]["up"], replicas["a"]["health"]) == (True, "up")
        assert (replicas["b"]["up"], replicas["b"]["health"]) == (False, "down")
        up = "router_r1_policy_engine_up"
        assert metric(metrics, up, profile="router-r1", replica="a") == 1.0
        assert metric(metrics, up, profile="router-r1", replica="b") == 0.0
        state = "router_r1_policy_engine_breaker_state"
        assert metric(metrics, state, profile="router-r1", replica="b") == 0.0

        gw.hosts.down.add("a")
        ready = await gw.http.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "not_ready"


async def test_the_background_poll_marks_a_dead_replica_down() -> None:
    async with gateway(engine_health_interval_s=3600) as gw:
        state: AppState = getattr(gw.app.state, STATE_KEY)
        poller = state.engine_health
        assert poller is not None  # started by the lifespan
        gw.hosts.down.add("a")
        await poller.poll_once()  # one round, as the background task runs it
        metrics = (await gw.http.get("/metrics")).text
        assert metric(metrics, "router_r1_policy_engine_up", profile="router-r1", replica="a") == 0
        completion = await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
    steps = completion.model_extra["router"]["steps"]
    assert {step["replica"] for step in steps} == {"b"}  # never picked, so no failover either
    assert all(step["failover_from"] == [] for step in steps)


async def test_a_profile_may_name_its_own_session_header() -> None:
    registry = replica_registry(
        ["a", "b"],
        policy={
            "endpoints": ["a", "b"],
            "model": "ulab-ai/Router-R1-Qwen2.5-3B-Instruct",
            "session_header": "x-user-id",
        },
    )
    async with gateway(registry) as gw:
        await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
    completions = [seen for seen in gw.hosts.requests if seen.path == "/v1/completions"]
    assert all("x-user-id" in seen.headers for seen in completions)
    assert not any("x-session-id" in seen.headers for seen in completions)


async def test_the_session_header_can_be_turned_off() -> None:
    async with gateway(engine_session_header="") as gw:
        await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
    assert not any("x-session-id" in seen.headers for seen in gw.hosts.requests)
