"""The gateway and VLLMEngine against a real vLLM server on the CPU (SmolLM2-135M-Instruct).

One vLLM server (``scripts/setup_vllm.sh``'s venv and converted checkpoint) is started for
these tests on a free loopback port, with a bounded readiness wait (a failed start shows the
server's log tail), and stopped after them. Episodes go through the whole proxy (openai SDK →
gateway → VLLMEngine → vLLM) with the packaged local registry's ``grammar: true`` profile
switched to ``engine: vllm``; upstreams are the in-process :class:`FakeUpstream`, so
observations are known exactly.

SmolLM2 is an untrained policy: to play a fixed number of routes the engine-side transport
replaces each turn's grammar by a route-only one for the first ``routes`` turns of an
episode and an answer-only one after (the gateway's own grammar request is recorded first,
and checked). Everything else is the real thing: token-id prompts, streaming, stop strings,
continuous batching, automatic prefix caching read from vLLM's own ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from local_stack.checkpoints import converted_smollm2_dir, require_converted
from local_stack.processes import free_port
from local_stack.stack import ALIASES, PLUMBING_PROFILE, PORT_ENV, local_registry_path
from local_stack.vllm_cpu import (
    VLLMServerConfig,
    read_metrics,
    stop_vllm_server,
    vllm_installed,
    vllm_server,
)
from router_model.protocol.grammar import action_grammar
from router_model.protocol.observation import format_observation
from router_model.protocol.prompt import fill_policy_prompt
from router_model.protocol.turn import ActionKind, cut_turn, parse_action
from router_model.registry import Registry, RouterProfile
from server.app import create_app
from server.engines import EngineError, GenerationParams, VLLMEngine
from server.settings import Settings
from server.state import final_turn_grammar, profile_grammar
from tests.deploy.dashboards import dashboard_files, expressions, is_vllm, load, substitute
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.integration.guarded_context import check_guarded_context
from tests.integration.recording import Exchange, RecordingTransport
from tests.servers.in_process import sdk_client
from tests.servers.prometheus_server import PrometheusServer, finite_values

# the plumbing profile's policy (SmolLM2-135M-Instruct), served here by vLLM under its name
POLICY_MODEL = ALIASES["smollm2"]

pytestmark = pytest.mark.slow

READY_TIMEOUT_S = 300.0
BLOCK_SIZE = 32
REPLY = "Leo Tolstoy wrote War and Peace; it was published in 1869."
SMOLLM2_CHAT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
)
QUESTIONS = [
    "Who wrote the novel War and Peace",
    "What is the capital city of Australia",
    "Which planet is known as the red planet",
    "In which year did the first person walk on the moon",
]
# Short blocks keep every turn at a few dozen tokens (a turn costs ~0.1 s per token here).
SHORT = {"max_thought_chars": 48, "max_query_chars": 32, "max_answer_chars": 24}


@dataclass(frozen=True)
class VLLMCPU:
    config: VLLMServerConfig
    startup_s: float

    @property
    def root_url(self) -> str:
        return self.config.root_url

    def metrics(self, *names: str) -> dict[str, float]:
        return read_metrics(self.root_url, names)


# Module scope: the only module that uses it, so the server is started once per session and
# stopped as soon as these tests are done (not kept idle through the rest of the suite).
@pytest.fixture(scope="module")
def vllm_cpu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMCPU]:
    if not vllm_installed():
        pytest.fail("the vLLM venv is not installed: run scripts/setup_vllm.sh", pytrace=False)
    try:
        model_dir = require_converted(converted_smollm2_dir())
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    config = VLLMServerConfig(
        model_dir=model_dir, port=free_port(), served_model_name=POLICY_MODEL, block_size=BLOCK_SIZE
    )
    server = vllm_server(config, tmp_path_factory.mktemp("vllm-logs"))
    server.start()
    try:
        startup_s = server.wait_ready(READY_TIMEOUT_S)
        print(f"\nvLLM (CPU) ready in {startup_s:.1f} s on {config.root_url}")
        yield VLLMCPU(config, startup_s)
    finally:
        stop_vllm_server(server)


def vllm_registry(vllm: VLLMCPU) -> Registry:
    """The local stack's registry, its ``grammar: true`` policy served by this vLLM."""
    registry = Registry.from_file(
        local_registry_path(), environ={PORT_ENV["smollm2"]: str(vllm.config.port)}
    )
    profiles = tuple(
        p.model_copy(update={"policy": p.policy.model_copy(update={"engine": "vllm"})})
        if p.name == PLUMBING_PROFILE
        else p
        for p in registry.spec.profiles
    )
    return Registry(registry.spec.model_copy(update={"profiles": profiles}), registry.source)


def local_profile(registry: Registry) -> RouterProfile:
    profile = registry.profile(PLUMBING_PROFILE)
    assert profile is not None
    return profile


def pool_names(registry: Registry) -> list[str]:
    return [model.name for model in registry.pool(local_profile(registry))]


class ScriptedTurns(RecordingTransport):
    """Records engine traffic; replaces each turn's grammar so an episode makes ``routes``
    routes and then answers. An episode is recognised by its first prompt (every later
    prompt of the episode starts with it)."""

    def __init__(self, names: list[str], routes: int) -> None:
        super().__init__()
        full = action_grammar(names, **SHORT)
        self.route_grammar = full.replace("action ::= answer | search", "action ::= search")
        assert self.route_grammar != full
        self.answer_grammar = action_grammar([], **SHORT)
        self.routes = routes
        self.requested_grammars: list[str | None] = []
        self._first_prompts: list[list[int]] = []
        self._turns: list[int] = []

    def _turn_of(self, prompt: list[int]) -> int:
        for episode, first in enumerate(self._first_prompts):
            if prompt[: len(first)] == first:
                self._turns[episode] += 1
                return self._turns[episode]
        self._first_prompts.append(prompt)
        self._turns.append(0)
        return 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/completions":
            body = json.loads(await request.aread())
            self.requested_grammars.append((body.get("structured_outputs") or {}).get("grammar"))
            turn = self._turn_of(body["prompt"])
            grammar = self.route_grammar if turn < self.routes else self.answer_grammar
            body["structured_outputs"] = {"grammar": grammar}
            headers = [(k, v) for k, v in request.headers.items() if k.lower() != "content-length"]
            request = httpx.Request(
                request.method,
                request.url,
                headers=headers,
                content=json.dumps(body).encode(),
                extensions=request.extensions,
            )
        return await super().handle_async_request(request)

    def completions(self) -> list[Exchange]:
        return self.to("/v1/completions")


@dataclass
class Proxy:
    client: openai.AsyncOpenAI
    engine_calls: ScriptedTurns
    upstream: FakeUpstream
    registry: Registry


@asynccontextmanager
async def proxy(vllm: VLLMCPU, routes: int) -> AsyncIterator[Proxy]:
    registry = vllm_registry(vllm)
    engine_calls = ScriptedTurns(pool_names(registry), routes)
    upstream = FakeUpstream(
        scripts={str(m.upstream_model): UpstreamScript(reply=REPLY) for m in registry.models}
    )
    settings = Settings.from_flat(
        dict(
            upstream_total_timeout_s=30.0,
            engine_read_timeout_s=300.0,
            cache_enabled=False,
            registry_reload_interval_s=0,
        )
    )
    app = create_app(
        settings,
        registry=registry,
        engine_transport=engine_calls,
        upstream_transport=httpx.ASGITransport(app=upstream.app),
    )
    async with sdk_client(app, request_timeout_s=300) as (client, _):
        yield Proxy(client, engine_calls, upstream, registry)


@asynccontextmanager
async def engine_on(vllm: VLLMCPU) -> AsyncIterator[VLLMEngine]:
    """A VLLMEngine of its own on the server (independent of any gateway)."""
    async with httpx.AsyncClient(timeout=300) as client:
        yield VLLMEngine(client, base_url=vllm.config.base_url, model=POLICY_MODEL)


def cached_tokens(exchange: Exchange) -> int:
    details = exchange.completion_usage().get("prompt_tokens_details") or {}
    return int(details.get("cached_tokens") or 0)


async def expected_prompts(
    engine: VLLMEngine, registry: Registry, question: str, calls: list[Exchange]
) -> list[list[int]]:
    """The prompt of every turn in the training layout, built piece by piece: the chat
    template ids, then per turn ids(cut turn text) and, after a valid route, ids(observation),
    each piece tokenized on its own by the engine."""
    template = registry.policy_template(local_profile(registry))
    ids = await engine.chat_prompt_ids(fill_policy_prompt(template, question))
    prompts = []
    for call in calls:
        prompts.append(list(ids))
        turn = cut_turn(call.completion_text())
        ids += await engine.tokenize(turn)
        if parse_action(turn).is_route:
            ids += await engine.tokenize(format_observation(REPLY))
    return prompts


# --- VLLMEngine on the real server ---------------------------------------------------------


async def test_chat_prompt_and_tokenization(vllm_cpu: VLLMCPU) -> None:
    async with engine_on(vllm_cpu) as engine:
        ids = await engine.chat_prompt_ids("What is 2+2?")
        expected = await engine.tokenize(SMOLLM2_CHAT)
        im_start = await engine.tokenize("<|im_start|>")
        text = "<think> Who? </think>\n<search> Gemma-3-270M: the author </search>"
        round_trip = await engine.detokenize(await engine.tokenize(text))
    assert ids == expected  # the checkpoint's chat template (with its default system turn)
    assert len(im_start) == 1
    assert ids[0] == im_start[0]  # no BOS in front of the template's own tokens
    assert ids.count(im_start[0]) == 3
    assert round_trip == text


async def test_gbnf_grammar_is_accepted_and_constrains_the_turn(vllm_cpu: VLLMCPU) -> None:
    registry = vllm_registry(vllm_cpu)
    names = pool_names(registry)
    grammar = profile_grammar(registry, local_profile(registry))
    assert grammar is not None  # the local profile is grammar: true
    short = action_grammar(names, **SHORT)
    async with engine_on(vllm_cpu) as engine:
        prompt = await engine.chat_prompt_ids("Who wrote War and Peace? Ask another model.")
        texts = []
        for seed in (1, 2, 3):
            params = GenerationParams(max_tokens=200, temperature=1.0, seed=seed, grammar=short)
            generation = await engine.generate(prompt, params)
            assert generation.finish_reason == "stop"
            texts.append(generation.text)
        chunks = [
            c
            async for c in engine.stream_generate(
                prompt, GenerationParams(max_tokens=200, seed=4, grammar=short)
            )
        ]
        texts.append("".join(c.text for c in chunks))
        assert chunks[-1].finish_reason == "stop"
        with pytest.raises(EngineError) as invalid:
            await engine.generate(prompt, GenerationParams(max_tokens=4, grammar="root ::= ("))
    assert invalid.value.status_code == 400
    for text in texts:
        assert text.startswith("<think>"), text
        action = parse_action(text)
        assert action.kind in (ActionKind.SEARCH, ActionKind.ANSWER), text  # valid kinds only
        if action.kind is ActionKind.SEARCH:
            assert action.model_name in names, text


# --- Episodes through the proxy ------------------------------------------------------------


async def test_multi_turn_episode_keeps_the_training_layout_and_hits_the_prefix_cache(
    vllm_cpu: VLLMCPU,
) -> None:
    routes = 2
    counters = ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total")
    before = vllm_cpu.metrics(*counters)
    async with proxy(vllm_cpu, routes) as gw:
        completion = await gw.client.chat.completions.create(
            model=PLUMBING_PROFILE,
            messages=[{"role": "user", "content": QUESTIONS[0]}],
            seed=11,
        )
        calls = gw.engine_calls.completions()
        async with engine_on(vllm_cpu) as engine:
            expected = await expected_prompts(engine, gw.registry, QUESTIONS[0], calls)
    after = vllm_cpu.metrics(*counters)

    router = completion.model_dump()["router"]
    actions = [step["action"] for step in router["steps"]]
    assert router["outcome"] == "answer"
    # the scripted route turns are routes; one may be invalid (a "your-query" placeholder
    # is grammatical), and then it uses up its turn without an observation
    assert actions[-1] == "answer"
    assert set(actions[:-1]) <= {"route", "invalid"}
    assert router["totals"]["routes"] == actions.count("route") >= 1
    assert len(gw.upstream.calls) == actions.count("route")
    # the gateway asked for its profile's grammar on every turn but the final one (where a
    # route would not be executed), which may only answer
    profile = local_profile(gw.registry)
    grammar = profile_grammar(gw.registry, profile)
    final = final_turn_grammar(profile) if routes == profile.limits.max_routes else grammar
    assert gw.engine_calls.requested_grammars == [grammar] * routes + [final]

    # token fidelity: what vLLM received is the training layout, piece by piece
    assert len(calls) == routes + 1
    received = [call.request["prompt"] for call in calls]
    assert all(isinstance(i, int) for prompt in received for i in prompt)
    assert received == expected
    reasoning = completion.choices[0].message.model_dump().get("reasoning_content")
    observation = format_observation(REPLY)
    turns = [cut_turn(call.completion_text()) for call in calls]
    assert reasoning == "".join(
        turn + (observation if parse_action(turn).is_route else "") for turn in turns
    )

    # prefix cache: every later turn re-uses all whole blocks of the previous prompt
    for previous, call in pairwise(calls):
        prompt, cached = len(call.request["prompt"]), cached_tokens(call)
        new = prompt - len(previous.request["prompt"])
        assert cached >= len(previous.request["prompt"]) // BLOCK_SIZE * BLOCK_SIZE
        assert prompt - cached <= new + BLOCK_SIZE
    hits = after["vllm:prefix_cache_hits_total"] - before["vllm:prefix_cache_hits_total"]
    queries = after["vllm:prefix_cache_queries_total"] - before["vllm:prefix_cache_queries_total"]
    assert queries == sum(len(prompt) for prompt in received)
    assert hits >= sum(cached_tokens(call) for call in calls[1:]) > 0


async def test_streamed_episode(vllm_cpu: VLLMCPU) -> None:
    async with proxy(vllm_cpu, routes=1) as gw:
        stream = await gw.client.chat.completions.create(
            model=PLUMBING_PROFILE,
            messages=[{"role": "user", "content": QUESTIONS[1]}],
            seed=12,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        calls = gw.engine_calls.completions()
    answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert answer.strip()
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert len(calls) == 2
    assert all(call.request["stream"] for call in calls)
    first, second = (call.request["prompt"] for call in calls)
    assert second[: len(first)] == first
    assert parse_action(calls[1].completion_text()).kind is ActionKind.ANSWER
    assert answer.strip() in calls[1].completion_text()
    routed = parse_action(cut_turn(calls[0].completion_text())).is_route
    assert len(gw.upstream.calls) == int(routed)


async def test_concurrent_episodes_are_batched(vllm_cpu: VLLMCPU) -> None:
    running_seen: list[float] = []
    done = asyncio.Event()

    async def watch_running() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while not done.is_set():
                reply = await client.get(vllm_cpu.root_url + "/metrics")
                for line in reply.text.splitlines():
                    if line.startswith("vllm:num_requests_running"):
                        running_seen.append(float(line.rsplit(" ", 1)[1]))
                await asyncio.sleep(0.2)

    async with proxy(vllm_cpu, routes=1) as gw:

        async def episode(i: int) -> tuple[dict[str, Any], float]:
            started = time.perf_counter()
            completion = await gw.client.chat.completions.create(
                model=PLUMBING_PROFILE,
                messages=[{"role": "user", "content": QUESTIONS[i]}],
                seed=20 + i,
            )
            return completion.model_dump()["router"], time.perf_counter() - started

        watcher = asyncio.create_task(watch_running())
        started = time.perf_counter()
        try:
            results = await asyncio.gather(*(episode(i) for i in range(4)))
        finally:
            done.set()
            await watcher
        wall = time.perf_counter() - started
        calls = gw.engine_calls.completions()

    routers = [router for router, _ in results]
    assert [r["outcome"] for r in routers] == ["answer"] * 4
    assert [len(r["steps"]) for r in routers] == [2] * 4
    assert len(calls) == 8
    assert len(gw.upstream.calls) == sum(r["totals"]["routes"] for r in routers) >= 1
    # continuous batching: vLLM ran several requests at once, and the episodes overlapped
    assert max(running_seen) >= 2, running_seen
    elapsed = sum(seconds for _, seconds in results)
    print(f"\n4 concurrent episodes: wall {wall:.1f} s, episode times summed {elapsed:.1f} s")


# Twelve distinct questions: ScriptedTurns tells episodes apart by their first prompt.
FIDELITY_QUESTIONS = [
    *QUESTIONS,
    "Who painted the Mona Lisa",
    "What is the largest ocean on Earth",
    "Which element has the chemical symbol O",
    "How many continents are there",
    "What language is spoken in Brazil",
    "Who discovered penicillin",
    "What is the boiling point of water in Celsius",
    "Which metal is liquid at room temperature",
]


async def test_token_fidelity_over_many_episodes(vllm_cpu: VLLMCPU) -> None:
    """The fidelity property over many real vLLM episodes (four at a time, every other one
    streamed to the client): every turn's prompt ids are the training layout built piece by
    piece. Only the layout is asserted, never what the model wrote."""
    routes = 2
    started = time.perf_counter()
    async with proxy(vllm_cpu, routes) as gw:
        slots = asyncio.Semaphore(4)

        async def episode(i: int, question: str) -> None:
            async with slots:
                request: dict[str, Any] = dict(
                    model=PLUMBING_PROFILE, messages=[{"role": "user", "content": question}], seed=i
                )
                if i % 2:
                    stream = await gw.client.chat.completions.create(**request, stream=True)
                    _ = [chunk async for chunk in stream]
                else:
                    await gw.client.chat.completions.create(**request)

        await asyncio.gather(*(episode(i, q) for i, q in enumerate(FIDELITY_QUESTIONS)))
        calls = gw.engine_calls.completions()
        compared = 0
        async with engine_on(vllm_cpu) as engine:
            template = gw.registry.policy_template(local_profile(gw.registry))
            for question in FIDELITY_QUESTIONS:
                first = await engine.chat_prompt_ids(fill_policy_prompt(template, question))
                mine = [c for c in calls if c.request["prompt"][: len(first)] == first]
                assert len(mine) == routes + 1, question
                expected = await expected_prompts(engine, gw.registry, question, mine)
                assert [c.request["prompt"] for c in mine] == expected, question
                compared += sum(len(prompt) for prompt in expected)
    assert len(calls) == len(FIDELITY_QUESTIONS) * (routes + 1)
    print(
        f"\ntoken fidelity (vLLM-CPU): {len(FIDELITY_QUESTIONS)} episodes, {len(calls)} turns, "
        f"{compared} ids compared, 0 mismatches, {time.perf_counter() - started:.0f} s"
    )


# --- the Grafana dashboard's vLLM panels ----------------------------------------------------


async def test_the_dashboards_vllm_panels_return_data(vllm_cpu: VLLMCPU, tmp_path: Path) -> None:
    """A real Prometheus scrapes this vLLM while it serves streamed turns (the same prompt
    three times: prefix-cache hits); then every vLLM panel's PromQL returns data."""
    prometheus = PrometheusServer(tmp_path / "prometheus", [f"127.0.0.1:{vllm_cpu.config.port}"])

    await asyncio.to_thread(prometheus.start)
    try:
        # rates need a sample on each side of the load
        ttft_count = "vllm:time_to_first_token_seconds_count"
        await asyncio.to_thread(prometheus.wait_for, f"count_over_time({ttft_count}[1m]) >= 2")
        before = finite_values(await asyncio.to_thread(prometheus.query, ttft_count))[0]
        async with engine_on(vllm_cpu) as engine:
            prompt = await engine.chat_prompt_ids("What is the capital city of France?")
            params = GenerationParams(max_tokens=8, temperature=0.0)
            for _ in range(3):  # the same prompt: prefix-cache hits
                chunks = [chunk async for chunk in engine.stream_generate(prompt, params)]
                assert chunks[-1].is_final
        await asyncio.to_thread(prometheus.wait_for, f"{ttft_count} >= {before + 3}")
        empty: list[str] = []
        for path in dashboard_files():
            for title, expr in expressions(load(path)):
                if not is_vllm(expr):
                    continue
                query = substitute(expr, "1m", "1m")
                result = await asyncio.to_thread(prometheus.query, query)
                if not finite_values(result):
                    empty.append(f"{path.name}: {title}: {query} -> {result}")
        assert empty == []
    finally:
        await asyncio.to_thread(prometheus.stop)


# --- special-token neutralisation with vLLM's real tokenizer --------------------------------


async def test_injected_control_tokens_never_reach_the_context(vllm_cpu: VLLMCPU) -> None:
    registry = vllm_registry(vllm_cpu)
    async with engine_on(vllm_cpu) as engine:
        await check_guarded_context(engine, registry, local_profile(registry))
