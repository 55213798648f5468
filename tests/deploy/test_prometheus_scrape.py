"""A real Prometheus scrapes a real uvicorn-served proxy under a short load of real episodes
(fake engine and upstreams); then every dashboard panel's PromQL must return data.

The load provokes what the panels show: streams (time to first token), retries (a model
answering 429), fallbacks (an episode that never answers, a passthrough model that fails),
per-request caps, open breakers (a model answering 500)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from router_model.registry import Registry
from router_model.registry.schema import ProfileFallback
from server.app import create_app
from server.auth import hash_key
from server.settings import Settings
from tests.deploy.dashboards import dashboard_files, expressions, is_engine, load, substitute
from tests.fakes.registry import default_registry
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM
from tests.servers.prometheus_server import PrometheusServer, finite_values
from tests.servers.uvicorn_server import serving

pytestmark = pytest.mark.slow

KEY, LIMITED, BROKE = "rr1-load-key", "rr1-limited-key", "rr1-broke-key"
KEYS = (
    f'[{{"id": "load", "sha256": "{hash_key(KEY)}"}},'
    f' {{"id": "limited", "sha256": "{hash_key(LIMITED)}", "requests_per_minute": 1}},'
    f' {{"id": "broke", "sha256": "{hash_key(BROKE)}", "budget_usd": 1e-9}}]'
)
ANSWER = "<think>Done.</think>\n<answer> Leo Tolstoy </answer>"
INVALID = "<think>Hmm.</think> no action at all"
ROUTES = {
    "ask qwen": "Qwen2.5-7B-Instruct",  # deterministic: cache misses then hits
    "ask gemma": "Gemma-2-27B-Instruct",  # temperature 0.1: never cached
    "ask llama": "LLaMA-3.1-8B-Instruct",  # its upstream fails: upstream errors
    "ask mistral": "Mistral-7B-Instruct",  # its upstream is over quota (429): retries
}
UPSTREAM = FakeUpstream(
    {
        "qwen/qwen2.5-7b-instruct": UpstreamScript(reply="Tolstoy."),
        "google/gemma-2-27b-it": UpstreamScript(reply="Leo Tolstoy."),
        "meta/llama-3.1-8b-instruct": UpstreamScript(status=500),
        "mistralai/mistral-7b-instruct-v0.3": UpstreamScript(status=429),
    }
)
CAP_HEADERS = {"x-router-max-cost-usd": "0.000000001"}  # below any call's worst case


def load_registry() -> Registry:
    """The default registry with fallbacks: the profile's (Qwen, when the episode cannot
    answer) and LLaMA-8B's as a passthrough (Qwen)."""
    registry = default_registry()
    models = tuple(
        m.model_copy(update={"fallbacks": ("Qwen2.5-7B-Instruct",)})
        if m.name == "LLaMA-3.1-8B-Instruct"
        else m
        for m in registry.models
    )
    profiles = tuple(
        p.model_copy(
            update={"fallback": ProfileFallback(model="Qwen2.5-7B-Instruct", when=("no_answer",))}
        )
        for p in registry.spec.profiles
    )
    return Registry(registry.spec.model_copy(update={"models": models, "profiles": profiles}))


LOAD_S = 8.0
RATE_INTERVAL = "1m"  # the whole load run: robust on a loaded CI machine


def policy(prompt: str) -> str:
    if "never answer" in prompt:  # every turn invalid: the episode ends without an answer
        return INVALID
    tail = prompt.rstrip()
    if tail.endswith("</information>") or tail.endswith("no action at all"):
        return ANSWER
    if "be invalid" in prompt:
        return INVALID
    for phrase, model in ROUTES.items():
        if phrase in prompt:
            return f"<think>Ask.</think>\n<search> {model}:who wrote war and peace </search>"
    return ANSWER


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def streamed(client: openai.AsyncOpenAI, model: str, text: str) -> None:
    stream = await client.chat.completions.create(model=model, messages=ask(text), stream=True)
    async for _ in stream:
        pass


async def one_round(client: openai.AsyncOpenAI, round_no: int) -> None:
    keyed = client.with_options(api_key=KEY)
    calls: list[Any] = [
        keyed.chat.completions.create(model="router-r1", messages=ask(f"{phrase} {round_no % 2}"))
        for phrase in (*ROUTES, "be invalid", "just answer", "never answer")
    ]
    calls.append(keyed.chat.completions.create(model="Qwen2.5-7B-Instruct", messages=ask("hi")))
    calls.append(keyed.chat.completions.create(model="LLaMA-3.1-8B-Instruct", messages=ask("hi")))
    calls.append(streamed(keyed, "router-r1", "just answer"))
    calls.append(streamed(keyed, "Qwen2.5-7B-Instruct", "hi"))
    calls.append(
        keyed.chat.completions.create(
            model="router-r1", messages=ask("ask gemma 0"), extra_headers=CAP_HEADERS
        )
    )
    calls.append(keyed.chat.completions.create(model="no-such-model", messages=ask("hi")))
    calls.append(client.chat.completions.create(model="router-r1", messages=ask("no key")))
    for key in (LIMITED, BROKE):
        calls.append(
            client.with_options(api_key=key).chat.completions.create(
                model="router-r1",
                messages=ask("ask gemma 0"),  # never cached: it costs
            )
        )
    await asyncio.gather(*calls, return_exceptions=True)


async def test_every_panel_returns_data(tmp_path: Path) -> None:
    app = create_app(
        Settings.from_flat(
            dict(
                api_keys=KEYS,
                upstream_backoff_base_s=0.001,
                upstream_max_retries=1,
                registry_reload_interval_s=0,
            )
        ),
        registry=load_registry(),
        engine_transport=httpx.ASGITransport(app=FakeVLLM(policy).app),
        upstream_transport=httpx.ASGITransport(app=UPSTREAM.app),
    )
    async with serving(app) as port:
        prometheus = PrometheusServer(tmp_path / "prometheus", [f"127.0.0.1:{port}"])
        await asyncio.to_thread(prometheus.start)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                client = openai.AsyncOpenAI(
                    base_url=f"http://127.0.0.1:{port}/v1",
                    api_key="rr1-wrong-key",
                    http_client=http,
                    max_retries=0,
                )
                started, round_no = time.monotonic(), 0
                while time.monotonic() - started < LOAD_S:
                    await one_round(client, round_no)
                    round_no += 1
                    await asyncio.sleep(0.1)
            await asyncio.sleep(2.5)  # the last scrapes see the load's end state
            up = finite_values(await asyncio.to_thread(prometheus.query, "max_over_time(up[30s])"))
            assert up == [1.0], await asyncio.to_thread(prometheus.target_health)
            empty: list[str] = []
            for path in dashboard_files():
                for title, expr in expressions(load(path)):
                    if is_engine(expr):  # an engine's own metrics: checked against it, live
                        continue
                    query = substitute(expr, RATE_INTERVAL, "1m")
                    result = await asyncio.to_thread(prometheus.query, query)
                    if not finite_values(result):
                        empty.append(f"{path.name}: {title}: {query} -> {result}")
            assert empty == []
            checks = {
                'sum(rate(router_r1_requests_total{status="200"}[1m]))': "episodes served",
                'sum(rate(router_r1_cache_lookups_total{result="hit"}[1m]))': "cache hits",
                'sum(rate(router_r1_rejections_total{reason="budget"}[1m]))': "budget refusals",
                'sum(rate(router_r1_rejections_total{reason="requests"}[1m]))': "rate limits",
                'sum(rate(router_r1_upstream_calls_total{status!~"ok|cached|shared"}[1m]))': (
                    "errors"
                ),
                "sum(rate(router_r1_invalid_actions_total[1m]))": "invalid actions",
                "sum(rate(router_r1_upstream_retries_total[1m]))": "retries",
                "sum(rate(router_r1_fallbacks_total[1m]))": "fallbacks",
                "sum(rate(router_r1_caps_tripped_total[1m]))": "caps tripped",
                "sum(rate(router_r1_time_to_first_token_seconds_count[1m]))": "streams",
                "sum(rate(process_cpu_seconds_total[1m]))": "process CPU",
            }
            for query, what in checks.items():
                values = finite_values(await asyncio.to_thread(prometheus.query, query))
                assert values, f"no {what}: {query}"
                assert values[0] > 0, f"no {what}: {query}"
        finally:
            await asyncio.to_thread(prometheus.stop)
