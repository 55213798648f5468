"""The trace's timing fields: ``started_at``, each step's ``started_ms`` and
``upstream_started_ms`` (offsets on the runner's clock), ``cached_tokens``, the answer.

A stub engine and route caller advance a fake clock by known amounts per call, so every
offset is exact."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from router_model.episode import EpisodeRunner
from router_model.episode.route import UpstreamReply
from router_model.episode.trace import RouterTrace
from router_model.registry import ModelSpec, Registry
from server.engines import Generation, GenerationChunk, GenerationParams
from tests.fakes.registry import default_registry, router_profile
from tests.fakes.toy_tokenizer import ToyTokenizer

QWEN = "Qwen2.5-7B-Instruct"
ROUTE = "<think>Ask.</think>\n<search> Qwen2.5-7B-Instruct: capital of France </search>"
ANSWER = "<think>Known.</think>\n<answer> Paris </answer>"

GENERATE_S = 0.5  # each policy turn's generation
TOKENIZE_S = 0.01  # each tokenize call
UPSTREAM_S = 2.0  # each upstream call


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class StubEngine:
    """Scripted turns; every call moves the clock. ``cached`` is each turn's reported
    ``cached_tokens`` (None: the engine reports none)."""

    clock: Clock
    turns: list[str]
    cached: list[int | None]
    tokenizer: ToyTokenizer = field(default_factory=ToyTokenizer)

    async def chat_prompt_ids(self, user_message: str) -> list[int]:
        self.clock.now += TOKENIZE_S
        return self.tokenizer.encode(user_message)

    async def tokenize(self, text: str) -> list[int]:
        self.clock.now += TOKENIZE_S
        return self.tokenizer.encode(text)

    async def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids))

    async def generate(self, prompt_ids: Sequence[int], params: GenerationParams) -> Generation:
        raise NotImplementedError

    async def stream_generate(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> AsyncIterator[GenerationChunk]:
        text, cached = self.turns.pop(0), self.cached.pop(0)
        self.clock.now += GENERATE_S
        yield GenerationChunk(text=text)
        yield GenerationChunk(
            text="",
            finish_reason="stop",
            prompt_tokens=len(prompt_ids),
            completion_tokens=3,
            cached_tokens=cached,
        )

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


@dataclass
class StubCaller:
    clock: Clock
    attempts: int = 2

    async def route_call(self, model: ModelSpec, prompt: str, *, max_tokens: int) -> UpstreamReply:
        self.clock.now += UPSTREAM_S
        return UpstreamReply(model=model.name, status="ok", text="Paris.", attempts=self.attempts)


@pytest.fixture
def registry() -> Registry:
    return default_registry()


async def run(registry: Registry, turns: list[str], cached: list[int | None]) -> RouterTrace:
    clock = Clock()
    engine = StubEngine(clock, turns, cached)
    runner = EpisodeRunner(engine, StubCaller(clock), registry, router_profile(registry), clock)
    result = await runner.run_to_end("what is the capital of france")
    return result.trace


async def test_steps_carry_their_start_offsets(registry: Registry) -> None:
    before = time.time()
    trace = await run(registry, [ROUTE, ANSWER], [None, 7])
    after = time.time()

    assert before <= trace.started_at <= after
    route, answer = trace.steps
    # chat_prompt_ids came first; then turn 0's generation.
    assert route.started_ms == pytest.approx(TOKENIZE_S * 1000)
    # generation, tokenize of the turn, then the upstream call
    assert route.upstream_started_ms == pytest.approx((TOKENIZE_S * 2 + GENERATE_S) * 1000)
    assert route.upstream_latency_ms == pytest.approx(UPSTREAM_S * 1000)
    # turn 1 starts after the upstream call and the observation's tokenize
    turn1 = TOKENIZE_S * 3 + GENERATE_S + UPSTREAM_S
    assert answer.started_ms == pytest.approx(turn1 * 1000)
    assert answer.upstream_started_ms is None
    assert trace.totals.total_ms == pytest.approx((turn1 + GENERATE_S + TOKENIZE_S) * 1000)


async def test_cached_tokens_attempts_and_policy_cost_per_step(registry: Registry) -> None:
    trace = await run(registry, [ROUTE, ANSWER], [None, 7])
    route, answer = trace.steps
    assert (route.cached_tokens, answer.cached_tokens) == (None, 7)
    assert (route.upstream_attempts, answer.upstream_attempts) == (2, 0)
    for step in trace.steps:
        assert step.policy_cost_usd <= step.cost_usd
    assert sum(s.policy_cost_usd for s in trace.steps) == pytest.approx(
        trace.totals.policy_cost_usd
    )


async def test_the_answer_is_in_the_trace_only_when_there_is_one(registry: Registry) -> None:
    answered = await run(registry, [ANSWER], [None])
    assert (answered.outcome, answered.answer) == ("answer", "Paris")
    profile = router_profile(registry)
    no_answer = await run(registry, [ROUTE] * (profile.limits.max_routes + 1), [None] * 8)
    assert (no_answer.outcome, no_answer.answer) == ("no_answer", None)


def test_old_traces_without_timing_still_load() -> None:
    old = {"request_id": "r", "profile": "p", "policy_model": "m", "outcome": "answer"}
    trace = RouterTrace.model_validate({**old, "steps": [{"index": 0, "action": "answer"}]})
    assert (trace.started_at, trace.answer) == (0.0, None)
    step = trace.steps[0]
    assert (step.started_ms, step.upstream_started_ms, step.cached_tokens) == (0.0, None, None)
