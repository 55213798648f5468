"""What the operations layer costs per request (issue 5).

Run: ``.venv/bin/python bench/bench_ops.py [--requests N]``.

The gateway runs in-process (the openai SDK over an ASGI transport) with the test fakes as
policy engine and upstream, serving a one-route Router-R1 episode, sequentially, in four
configurations; the per-request differences are what each layer adds:

- open: no keys (no limit checks), in-memory store, cache off;
- keys+memory: a key with request/token/budget limits, in-memory store (admission, spend and
  the stored trace: pure Python);
- keys+redis: the same against a real ``redis-server`` on loopback (one Lua admission, one
  Lua script for spend, one pipeline for the trace and its indexes: three round trips, two of
  them concurrent);
- keys+redis+cache: plus the sub-query cache (a GET per route; hits skip the upstream).

It also times the raw Redis operations, and the metrics a finished episode records
(``Metrics.request_finished`` + ``episode_finished``), so the metrics cost per request can be
compared with the request itself. Figures are medians over the run; this machine's load from
other work shows in them, so compare configurations of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.auth import hash_key  # noqa: E402
from server.metrics import Metrics  # noqa: E402
from server.store import (  # noqa: E402
    Limits,
    RedisStore,
    TraceSummary,
    budget_window,
    minute_window,
)
from tests.fakes.registry import default_registry  # noqa: E402
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript  # noqa: E402
from tests.fakes.vllm_server import FakeVLLM  # noqa: E402
from tests.server.api.conftest import running_gateway  # noqa: E402
from tests.servers.redis_server import RedisServer  # noqa: E402

KEY = "rr1-bench-key"
KEYS = (
    f'[{{"id": "bench", "sha256": "{hash_key(KEY)}", "requests_per_minute": 1000000,'
    f' "tokens_per_minute": 1000000000, "budget_usd": 1000000}}]'
)
QUESTION = [{"role": "user", "content": "Who wrote the novel War and Peace?"}]
ROUTE = "<think>Ask.</think>\n<search> Qwen2.5-7B-Instruct:who wrote war and peace </search>"
ANSWER = "<think>Done.</think>\n<answer> Leo Tolstoy </answer>"


def policy(prompt: str) -> str:
    return ANSWER if prompt.rstrip().endswith("</information>") else ROUTE


CONFIGS: dict[str, dict[str, Any]] = {
    "open": {"cache_enabled": False},
    "keys+memory": {"api_keys": KEYS, "cache_enabled": False},
    "keys+redis": {"api_keys": KEYS, "cache_enabled": False},
    "keys+redis+cache": {"api_keys": KEYS},
}


async def per_request_ms(redis_url: str, requests: int) -> dict[str, float]:
    """Median ms per request of each configuration, measured in interleaved rounds (so the
    machine's changing load weighs on every configuration alike)."""
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for name, settings in CONFIGS.items():
            if "redis" in name:
                settings = {**settings, "redis_url": redis_url, "redis_timeout_s": 1.0}
            upstream = FakeUpstream({"qwen/qwen2.5-7b-instruct": UpstreamScript(reply="Tolstoy.")})
            gw = await stack.enter_async_context(
                running_gateway(FakeVLLM(policy), upstream, **settings)
            )
            clients[name] = gw.client.with_options(api_key=KEY)
        for client in clients.values():  # warm up
            for _ in range(10):
                await client.chat.completions.create(model="router-r1", messages=QUESTION)
        rounds = max(1, requests // 20)
        for _ in range(rounds):
            for name, client in clients.items():
                for _ in range(20):
                    started = time.perf_counter()
                    await client.chat.completions.create(model="router-r1", messages=QUESTION)
                    times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


async def redis_operations(url: str, n: int) -> None:
    store = RedisStore(url, timeout_s=1.0)
    now = time.time()
    minute, period = minute_window(now), budget_window(now, "month")
    limits = Limits(1_000_000, 1_000_000_000, 1e9)
    summary = TraceSummary(request_id="r", created=now, key_id="bench")
    try:
        for label, call in (
            ("admit (Lua)", lambda: store.admit("bench", limits, minute, period)),
            ("record_usage (Lua)", lambda: store.record_usage("bench", minute, period, 10, 1e-6)),
            ("put_trace (pipeline)", lambda: store.put_trace(summary, b"{}" * 500, 60)),
            ("cache_get (GET)", lambda: store.cache_get("route:x")),
        ):
            times = []
            for _ in range(n):
                started = time.perf_counter()
                await call()
                times.append(time.perf_counter() - started)
            print(f"  {label:<22} {statistics.median(times) * 1e6:8.1f} us (median of {n})")
    finally:
        await store.aclose()


def metrics_cost(n: int) -> float:
    """Median µs of the metrics one finished one-route episode records."""
    from router_model.episode.trace import RouterTotals, RouterTrace, RouteStep

    registry = default_registry()
    profile = registry.profile("router-r1")
    assert profile is not None
    trace = RouterTrace(
        request_id="r",
        profile=profile.name,
        policy_model=profile.policy.model,
        outcome="answer",
        steps=[
            RouteStep(
                index=0,
                action="route",
                model="Qwen2.5-7B-Instruct",
                upstream_status="ok",
                upstream_prompt_tokens=120,
                upstream_completion_tokens=20,
                cost_usd=4.2e-5,
                policy_latency_ms=30,
                upstream_latency_ms=200,
            ),
            RouteStep(index=1, action="answer", policy_latency_ms=20),
        ],
        totals=RouterTotals(
            routes=1, models=["Qwen2.5-7B-Instruct"], cost_usd=4.2e-5, overhead_ms=1.5, total_ms=260
        ),
    )
    metrics = Metrics()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        metrics.in_flight.inc()
        metrics.in_flight.dec()
        metrics.request_finished(profile.name, "router", "200", None, 0.26)
        metrics.episode_finished(profile, trace)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis").start()
        try:
            print("Per request, one-route episode, in-process gateway (median ms):")
            medians = await per_request_ms(redis.url, args.requests)
            for name, median in medians.items():
                print(f"  {name:<18} {median:8.3f} ms")
            base = medians["open"]
            print(
                f"  keys+limits in memory add {medians['keys+memory'] - base:+.3f} ms; Redis "
                f"adds {medians['keys+redis'] - medians['keys+memory']:+.3f} ms over memory; "
                f"the cache (hits) changes it by "
                f"{medians['keys+redis+cache'] - medians['keys+redis']:+.3f} ms"
            )
            print("Raw Redis operations (loopback):")
            await redis_operations(redis.url, 2000)
        finally:
            redis.stop()
    cost = metrics_cost(20_000)
    print(
        f"Metrics recorded per finished one-route episode: {cost:.1f} us "
        f"({cost / 1000 / base * 100:.2f} % of the open request's {base:.2f} ms)"
    )


if __name__ == "__main__":
    asyncio.run(main())
