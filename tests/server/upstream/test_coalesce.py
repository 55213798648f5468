"""Sub-query coalescing: identical deterministic calls in flight share one upstream call; the
first to receive it pays, the others are marked shared at $0."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from router_model.episode.route import UpstreamReply
from router_model.episode.turns import TurnState
from router_model.registry import ModelSpec, SamplingDefaults
from server.metrics import Metrics
from server.store import MemoryStore
from server.upstream.cache import CachingRouteCaller, cache_key
from server.upstream.coalesce import CoalescingRouteCaller
from tests.server.upstream.helpers import make_registry

QWEN = "Qwen2.5-7B-Instruct"  # temperature 0, seed 42: deterministic
GEMMA = "Gemma-2-27B-Instruct"  # temperature 0.1: sampling


class Gate:
    """A RouteCaller fake whose calls wait until released; counts calls per prompt."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls: Counter[str] = Counter()
        self.cancelled = 0

    async def route_call(self, model: ModelSpec, prompt: str, *, max_tokens: int) -> UpstreamReply:
        self.calls[prompt] += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return UpstreamReply(
            model=model.name,
            status="ok",
            text=f"answer to {prompt}",
            prompt_tokens=10,
            completion_tokens=5,
            cost_usd=0.25,
            attempts=2,
            deployment="e",
        )


def spec(name: str) -> ModelSpec:
    model = make_registry().model(name)
    assert model is not None
    return model


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_identical_calls_in_flight_share_one_call_and_one_pays() -> None:
    gate = Gate()
    caller = CoalescingRouteCaller(gate)
    model = spec(QWEN)
    tasks = [asyncio.create_task(caller.route_call(model, "q", max_tokens=8)) for _ in range(3)]
    await settle()
    assert gate.calls == {"q": 1}
    assert caller.in_flight == 1
    gate.release.set()
    replies = await asyncio.gather(*tasks)
    paid, *shared = replies
    assert (paid.shared, paid.cost_usd, paid.attempts) == (False, 0.25, 2)
    assert all((r.shared, r.cost_usd, r.attempts) == (True, 0.0, 0) for r in shared)
    assert {r.text for r in replies} == {"answer to q"}
    assert all((r.prompt_tokens, r.completion_tokens) == (10, 5) for r in shared)
    assert caller.in_flight == 0
    # landed: the next identical call is a call of its own
    again = await caller.route_call(model, "q", max_tokens=8)
    assert (gate.calls["q"], again.shared) == (2, False)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((QWEN, "q", 8), (QWEN, "other", 8)),
        ((QWEN, "q", 8), (QWEN, "q", 9)),
        ((GEMMA, "q", 8), (GEMMA, "q", 8)),  # sampling: two draws, never shared
    ],
)
async def test_different_or_sampling_calls_are_not_shared(
    first: tuple[str, str, int], second: tuple[str, str, int]
) -> None:
    gate = Gate()
    gate.release.set()
    caller = CoalescingRouteCaller(gate)
    replies = await asyncio.gather(
        *(caller.route_call(spec(m), p, max_tokens=n) for m, p, n in (first, second))
    )
    assert sum(gate.calls.values()) == 2
    assert not any(r.shared for r in replies)


async def test_the_key_is_the_caches() -> None:
    model = spec(QWEN)
    seedless = model.model_copy(update={"defaults": SamplingDefaults(seed=None)})
    assert cache_key(model, "q", 8) != cache_key(seedless, "q", 8)
    assert cache_key(model, "q", 8) == cache_key(spec(QWEN), "q", 8)


async def test_a_caller_that_leaves_does_not_cancel_the_call_for_the_others() -> None:
    gate = Gate()
    caller = CoalescingRouteCaller(gate)
    model = spec(QWEN)
    leader = asyncio.create_task(caller.route_call(model, "q", max_tokens=8))
    await settle()
    follower = asyncio.create_task(caller.route_call(model, "q", max_tokens=8))
    await settle()
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    gate.release.set()
    reply = await follower
    assert gate.cancelled == 0
    assert (reply.shared, reply.cost_usd) == (False, 0.25)  # the leader left: this one pays
    assert gate.calls == {"q": 1}


async def test_when_every_caller_leaves_the_call_is_cancelled() -> None:
    gate = Gate()
    caller = CoalescingRouteCaller(gate)
    model = spec(QWEN)
    tasks = [asyncio.create_task(caller.route_call(model, "q", max_tokens=8)) for _ in range(2)]
    await settle()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await settle()
    assert gate.cancelled == 1
    assert caller.in_flight == 0
    gate.release.set()
    fresh = await caller.route_call(model, "q", max_tokens=8)
    assert (fresh.shared, gate.calls["q"]) == (False, 2)


def test_the_trace_step_marks_a_shared_reply() -> None:
    reply = UpstreamReply(model=QWEN, status="ok", text="x", shared=True, deployment="e")
    step = TurnState(index=0, final=False, reply=reply).step()
    assert (step.shared, step.deployment, step.cached) == (True, "e", False)


async def test_behind_the_cache_concurrent_misses_make_one_call_and_one_entry() -> None:
    gate = Gate()
    store = MemoryStore()
    cached = CachingRouteCaller(CoalescingRouteCaller(gate), store, Metrics())
    model = spec(QWEN)
    tasks = [asyncio.create_task(cached.route_call(model, "q", max_tokens=8)) for _ in range(2)]
    await settle()
    gate.release.set()
    first, second = await asyncio.gather(*tasks)
    assert gate.calls == {"q": 1}
    assert (first.shared, second.shared) == (False, True)
    hit = await cached.route_call(model, "q", max_tokens=8)
    assert (hit.status, gate.calls["q"]) == ("cached", 1)
