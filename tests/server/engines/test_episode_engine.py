"""Episodes on a replica set: affinity, the session header, failover with exact token ids."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass

import httpx
import pytest

from router_model.episode import EpisodeResult, EpisodeRunner, RouteStarted
from router_model.episode.engine import EngineError, EngineUnavailable, GenerationParams
from router_model.protocol.observation import format_observation
from router_model.protocol.prompt import fill_policy_prompt
from router_model.registry import Registry
from server.engines.breaker import CircuitBreaker
from server.engines.replicas import Replica, ReplicaSet, SelectionMode
from server.engines.vllm import VLLMEngine
from tests.fakes.registry import default_registry, router_profile
from tests.fakes.replica_hosts import MODEL, ReplicaHosts, base_url
from tests.fakes.route_caller import FakeRouteCaller
from tests.fakes.vllm_server import ScriptedTurn

QWEN = "Qwen2.5-7B-Instruct"
LLAMA70 = "LLaMA-3.1-70B-Instruct"
QUESTION = "what is the capital of france"
TURN1 = "<think>I should ask.</think>\n<search> Qwen2.5-7B-Instruct: capital of France </search>"
TURN2 = "<think>And the river.</think>\n<search> LLaMA-3.1-70B-Instruct: river in Paris </search>"
TURN3 = "<think>Now I know.</think>\n<answer> Paris </answer>"
REPLIES = {QWEN: "OBS-ONE Paris.", LLAMA70: "OBS-TWO The Seine."}


def remainder(full: str, prompt: str) -> str:
    """What is left of ``full`` after the longest prefix of it that ends ``prompt`` (a turn
    cut off on one replica and continued on another)."""
    for k in range(len(full), 0, -1):
        if prompt.endswith(full[:k]):
            return full[k:]
    return full


def script(prompt: str) -> str:
    """The same policy on every replica: the turn depends only on the context so far."""
    if "OBS-TWO" in prompt:
        return remainder(TURN3, prompt)
    if "OBS-ONE" in prompt:
        return remainder(TURN2, prompt)
    return remainder(TURN1, prompt)


@dataclass
class Setup:
    hosts: ReplicaHosts
    replicas: ReplicaSet
    runner: EpisodeRunner
    registry: Registry

    def expected_prompts(self) -> list[list[int]]:
        """The token-id prompt of each of the three turns, built as the loop builds it."""
        tok = self.hosts.fakes["a"].tokenizer.encode
        profile = self.runner.profile
        template = self.registry.policy_template(profile)
        first = self.hosts.fakes["a"].chat_ids(fill_policy_prompt(template, QUESTION))
        second = first + tok(TURN1) + tok(format_observation(REPLIES[QWEN]))
        third = second + tok(TURN2) + tok(format_observation(REPLIES[LLAMA70]))
        return [first, second, third]

    def completion_prompts(self) -> list[tuple[str, list[int]]]:
        records = [
            (name, record.prompt_ids)
            for name, fake in self.hosts.fakes.items()
            for record in fake.completions
        ]
        return records


Make = Callable[..., AsyncIterator[Setup]]


@pytest.fixture
async def setup() -> AsyncIterator[Callable[..., Setup]]:
    clients: list[httpx.AsyncClient] = []

    def build(names: tuple[str, ...] = ("a", "b"), selection: SelectionMode = "affinity") -> Setup:
        hosts = ReplicaHosts.of(names, script)
        client = httpx.AsyncClient(transport=hosts)
        clients.append(client)
        replicas = ReplicaSet(
            [
                Replica(
                    name,
                    VLLMEngine(client, base_url=base_url(name), model=MODEL),
                    CircuitBreaker(cooldown_s=60.0),
                )
                for name in names
            ],
            session_header="x-session-id",
            selection=selection,
        )
        registry = default_registry()
        runner = EpisodeRunner(
            replicas,
            FakeRouteCaller(REPLIES),
            registry,
            router_profile(registry),
            engines=replicas,
        )
        return Setup(hosts, replicas, runner, registry)

    yield build
    for client in clients:
        await client.aclose()


async def test_every_call_of_an_episode_goes_to_one_replica_with_its_session_header(
    setup: Callable[..., Setup],
) -> None:
    s = setup()
    result = await s.runner.run_to_end(QUESTION, request_id="ep-1")
    assert result.answer_text == "Paris"
    episode_requests = [seen for seen in s.hosts.requests if "x-session-id" in seen.headers]
    assert {seen.host for seen in episode_requests} == {"a"}
    assert {seen.headers["x-session-id"] for seen in episode_requests} == {"ep-1"}
    assert {seen.path for seen in episode_requests} >= {"/tokenize", "/v1/completions"}
    assert s.hosts.completions("a") == 3
    assert [step.replica for step in result.trace.steps] == ["a", "a", "a"]
    assert all(step.failover_from == [] for step in result.trace.steps)
    assert s.replicas.replicas[0].in_flight == 0  # released at the episode's end


async def test_concurrent_episodes_spread_over_the_replicas(setup: Callable[..., Setup]) -> None:
    s = setup()
    first = s.runner.start(QUESTION, request_id="ep-1")
    async with aclosing(first.events()) as events:
        async for event in events:
            if isinstance(event, RouteStarted):  # ep-1 is pinned and in flight now
                assert [r.in_flight for r in s.replicas.replicas] == [1, 0]
                second = await s.runner.run_to_end(QUESTION, request_id="ep-2")
                assert {step.replica for step in second.trace.steps} == {"b"}
    assert {step.replica for step in first.result().trace.steps} == {"a"}
    hosts_by_session = {
        (seen.headers.get("x-session-id"), seen.host) for seen in s.hosts.requests
    } - {(None, "a"), (None, "b")}
    assert hosts_by_session == {("ep-1", "a"), ("ep-2", "b")}


async def test_a_replica_dying_between_turns_moves_the_episode_with_exact_token_ids(
    setup: Callable[..., Setup],
) -> None:
    s = setup()
    a = s.hosts.fakes["a"]

    def dies_after_its_first_turn(prompt: str) -> str:
        s.hosts.down.add("a")  # this reply still arrives; the next request is refused
        return script(prompt)

    a.set_script(dies_after_its_first_turn)
    result = await s.runner.run_to_end(QUESTION, request_id="ep-1")

    assert result.answer_text == "Paris"
    assert [(name, ids) for name, ids in s.completion_prompts()] == list(
        zip(["a", "b", "b"], s.expected_prompts(), strict=True)
    )
    steps = result.trace.steps
    assert [step.replica for step in steps] == ["a", "b", "b"]
    assert [step.failover_from for step in steps] == [[], ["a"], []]
    a_replica, b_replica = s.replicas.replicas
    assert a_replica.breaker.state == "open"
    assert (a_replica.in_flight, b_replica.in_flight) == (0, 0)


async def test_a_stream_cut_mid_turn_continues_on_another_replica(
    setup: Callable[..., Setup],
) -> None:
    s = setup()
    s.hosts.cut_after_events["a"] = 4  # the first turn breaks after four deltas
    result = await s.runner.run_to_end(QUESTION, request_id="ep-1")

    assert result.answer_text == "Paris"
    first = result.trace.steps[0]
    assert (first.replica, first.failover_from) == ("b", ["a"])
    assert first.action == "route"
    # the context is what it would have been without the failure
    assert result.context.response_text.startswith(TURN1 + format_observation(REPLIES[QWEN]))
    continued = next(ids for name, ids in s.completion_prompts() if name == "b")
    tok = s.hosts.fakes["a"].tokenizer.encode
    partial = s.hosts.fakes["a"].tokenizer.decode(continued[len(s.expected_prompts()[0]) :])
    assert TURN1.startswith(partial)
    assert partial
    assert continued == s.expected_prompts()[0] + tok(partial)
    # the cut-off attempt's prompt and its text are paid for too
    assert first.policy_prompt_tokens == len(s.expected_prompts()[0]) + len(continued)
    rest = TURN1[len(partial) :]  # what b generated (up to its stop string)
    assert first.policy_completion_tokens == len(tok(partial)) + len(tok(rest))


async def test_when_every_replica_fails_the_engine_error_propagates(
    setup: Callable[..., Setup],
) -> None:
    s = setup()
    s.hosts.down.update({"a", "b"})
    with pytest.raises(EngineUnavailable, match="every replica of the policy engine failed"):
        await s.runner.run_to_end(QUESTION, request_id="ep-1")
    assert [r.breaker.state for r in s.replicas.replicas] == ["open", "open"]
    assert [r.in_flight for r in s.replicas.replicas] == [0, 0]


async def test_a_single_replica_failing_raises_its_own_error(setup: Callable[..., Setup]) -> None:
    s = setup(("a",))
    s.hosts.down.add("a")
    with pytest.raises(EngineUnavailable, match="unreachable"):
        await s.replicas.tokenize("hello")


async def test_an_error_of_the_request_is_not_retried_elsewhere(
    setup: Callable[..., Setup],
) -> None:
    s = setup()
    for fake in s.hosts.fakes.values():
        fake.set_script([ScriptedTurn(status=400)])
    engine = s.replicas.episode_engine("ep-1")
    params = GenerationParams(max_tokens=8)
    with pytest.raises(EngineError) as caught:
        await engine.generate([1, 2, 3], params)
    assert not isinstance(caught.value, EngineUnavailable)
    assert s.hosts.hosts_of("/v1/completions") == ["a"]
    assert s.replicas.replicas[0].breaker.state == "closed"  # it answered
    await engine.aclose()
    await engine.aclose()  # idempotent
    assert s.replicas.replicas[0].in_flight == 0


async def test_round_robin_sends_each_turn_to_the_next_replica(
    setup: Callable[..., Setup],
) -> None:
    s = setup(selection="round_robin")
    result: EpisodeResult = await s.runner.run_to_end(QUESTION, request_id="ep-1")
    assert result.answer_text == "Paris"
    assert len({step.replica for step in result.trace.steps}) == 2
    assert all(step.failover_from == [] for step in result.trace.steps)  # not failovers


async def test_an_episode_cut_off_leaves_its_replica(setup: Callable[..., Setup]) -> None:
    s = setup()
    run = s.runner.start(QUESTION, request_id="ep-1")
    async with aclosing(run.events()) as events:
        async for event in events:
            if isinstance(event, RouteStarted):
                assert s.replicas.replicas[0].in_flight == 1
                break  # the client left
    assert [r.in_flight for r in s.replicas.replicas] == [0, 0]
