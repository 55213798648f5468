"""The sub-query cache wrapper, and through the gateway: hits are free and marked."""

from __future__ import annotations

from router_model.registry import ModelSpec
from server.metrics import Metrics
from server.store import MemoryStore, StoreUnavailable
from server.upstream.cache import CachingRouteCaller, cache_key, cache_wanted, is_deterministic
from tests.fakes.registry import default_registry
from tests.fakes.route_caller import Failure, FakeRouteCaller
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM
from tests.server.api.conftest import running_gateway

QWEN_NAME = "Qwen2.5-7B-Instruct"
GEMMA_NAME = "Gemma-2-27B-Instruct"  # temperature 0.1 in the registry: not deterministic


def model(name: str) -> ModelSpec:
    spec = default_registry().model(name)
    assert spec is not None
    return spec


def lookups(metrics: Metrics, model_name: str, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "router_r1_cache_lookups_total", {"model": model_name, "result": result}
    )
    return value or 0.0


class BrokenStore(MemoryStore):
    async def cache_get(self, key: str) -> bytes | None:
        raise StoreUnavailable("down")


async def test_a_repeated_deterministic_call_is_a_free_hit() -> None:
    inner = FakeRouteCaller({QWEN_NAME: "Tolstoy wrote it."})
    metrics = Metrics()
    cache = CachingRouteCaller(inner, MemoryStore(), metrics)
    qwen = model(QWEN_NAME)
    first = await cache.route_call(qwen, "who wrote war and peace", max_tokens=512)
    second = await cache.route_call(qwen, "who wrote war and peace", max_tokens=512)
    assert len(inner.calls) == 1
    assert first.status == "ok"
    assert first.cost_usd > 0
    assert second.status == "cached"
    assert second.succeeded
    assert second.cost_usd == 0
    assert second.text == first.text
    assert (second.prompt_tokens, second.completion_tokens) == (
        first.prompt_tokens,
        first.completion_tokens,
    )
    assert lookups(metrics, QWEN_NAME, "miss") == 1
    assert lookups(metrics, QWEN_NAME, "hit") == 1


async def test_the_key_covers_prompt_and_parameters() -> None:
    qwen = model(QWEN_NAME)
    base = cache_key(qwen, "q", 512)
    assert cache_key(qwen, "q ", 512) != base
    assert cache_key(qwen, "q", 256) != base
    reseeded = qwen.model_copy(update={"defaults": qwen.defaults.model_copy(update={"seed": 7})})
    assert cache_key(reseeded, "q", 512) != base
    assert cache_key(model("LLaMA-3.1-8B-Instruct"), "q", 512) != base


async def test_non_deterministic_models_are_not_cached() -> None:
    gemma = model(GEMMA_NAME)
    assert not is_deterministic(gemma)
    unseeded = model(QWEN_NAME).model_copy(
        update={"defaults": model(QWEN_NAME).defaults.model_copy(update={"seed": None})}
    )
    assert not is_deterministic(unseeded)
    inner = FakeRouteCaller({GEMMA_NAME: "x"})
    metrics = Metrics()
    cache = CachingRouteCaller(inner, MemoryStore(), metrics)
    for _ in range(2):
        assert (await cache.route_call(gemma, "q", max_tokens=16)).status == "ok"
    assert len(inner.calls) == 2
    assert lookups(metrics, GEMMA_NAME, "bypass") == 2


async def test_failures_are_not_cached() -> None:
    inner = FakeRouteCaller({QWEN_NAME: Failure()})
    cache = CachingRouteCaller(inner, MemoryStore(), Metrics())
    for _ in range(2):
        assert (await cache.route_call(model(QWEN_NAME), "q", max_tokens=16)).status == (
            "http_error"
        )
    assert len(inner.calls) == 2


async def test_oversized_replies_are_not_cached() -> None:
    inner = FakeRouteCaller({QWEN_NAME: "word " * 100})
    cache = CachingRouteCaller(inner, MemoryStore(), Metrics(), max_entry_bytes=100)
    for _ in range(2):
        await cache.route_call(model(QWEN_NAME), "q", max_tokens=16)
    assert len(inner.calls) == 2


async def test_an_unavailable_store_is_bypassed() -> None:
    inner = FakeRouteCaller({QWEN_NAME: "x"})
    metrics = Metrics()
    cache = CachingRouteCaller(inner, BrokenStore(), metrics)
    reply = await cache.route_call(model(QWEN_NAME), "q", max_tokens=16)
    assert reply.status == "ok"
    assert lookups(metrics, QWEN_NAME, "error") == 1


def test_opting_out() -> None:
    assert cache_wanted(None, {})
    assert cache_wanted("on", {})
    assert not cache_wanted("off", {})
    assert not cache_wanted(" OFF ", {})
    assert not cache_wanted(None, {"router": {"cache": False}})


QWEN = "qwen/qwen2.5-7b-instruct"
QUESTION = [{"role": "user", "content": "Who wrote the novel War and Peace?"}]
ROUTE = "<think>Ask.</think>\n<search> Qwen2.5-7B-Instruct:who wrote war and peace </search>"
ANSWER = "<think>Done.</think>\n<answer> Leo Tolstoy </answer>"


async def test_through_the_gateway_a_hit_is_marked_and_free() -> None:
    upstream = FakeUpstream({QWEN: UpstreamScript(reply="Tolstoy.")})
    async with running_gateway(FakeVLLM([ROUTE, ANSWER] * 3), upstream) as gw:
        first = await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
        second = await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
        third = await gw.client.chat.completions.create(
            model="router-r1", messages=QUESTION, extra_headers={"x-router-cache": "off"}
        )
    assert len(upstream.calls) == 2  # the first and the opted-out third
    steps = [c.model_extra["router"]["steps"][0] for c in (first, second, third)]
    assert [s["cached"] for s in steps] == [False, True, False]
    assert [s["upstream_status"] for s in steps] == ["ok", "cached", "ok"]
    assert steps[1]["cost_usd"] == 0
    assert steps[1]["reply_excerpt"] == "Tolstoy."
    assert second.model_extra["router"]["totals"]["cost_usd"] == 0
    assert first.model_extra["router"]["totals"]["cost_usd"] > 0
