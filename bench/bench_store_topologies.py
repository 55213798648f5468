"""Per-call latency of the Redis store on one redis-server, a Redis Cluster and a Sentinel-
managed primary (all on loopback), and how long a failover takes to be served again.

Run: ``.venv/bin/python bench/bench_store_topologies.py [--calls N] [--failovers K]``.

Latency: each store operation called sequentially ``N`` times per topology, median and p99
in µs. Recovery: a primary (the cluster's one serving the watched key; the Sentinels'
primary) is SIGKILLed while 8 workers admit and settle; the figure is the time from the kill
to the watched key's first successful call, with ``retry_interval_s=0.1`` (with the default
1 s, add up to a second), the cluster's ``cluster-node-timeout`` and Sentinel's
``down-after-milliseconds`` set as in the tests (1000 ms and 500 ms). Figures depend on this
machine's load from other work; compare topologies of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.store import (  # noqa: E402
    Limits,
    RedisStore,
    StoreUnavailable,
    TraceSummary,
    budget_window,
    minute_window,
)
from server.store.layout import tag  # noqa: E402
from tests.servers.redis_cluster import RedisClusterServers  # noqa: E402
from tests.servers.redis_sentinel import SentinelGroup  # noqa: E402
from tests.servers.redis_server import RedisServer  # noqa: E402

LIMITS = Limits(10**9, 10**12, 1e12)


async def latencies(url: str, calls: int) -> dict[str, tuple[float, float]]:
    """(median, p99) µs per operation."""
    store = RedisStore(url, timeout_s=1.0)
    now = time.time()
    minute, period = minute_window(now), budget_window(now, "month")
    ids = itertools.count()

    def summary() -> TraceSummary:  # a new request id each time: listings have 20 to show
        return TraceSummary(request_id=f"r{next(ids)}", created=time.time(), key_id="bench")

    admission = await store.admit("bench", LIMITS, minute, period, reserve_usd=0.01)
    operations: dict[str, Callable[[], Awaitable[object]]] = {
        "admit (no reservation)": lambda: store.admit("bench", LIMITS, minute, period),
        "admit + reserve": lambda: store.admit("bench", LIMITS, minute, period, reserve_usd=1e-6),
        "settle": lambda: store.settle("bench", admission.reservation, minute, period, 10, 1e-6),
        "usage": lambda: store.usage("bench", minute, period),
        "acquire_model_capacity": lambda: store.acquire_model_capacity(
            "m", minute, requests_per_minute=10**9, tokens_per_minute=10**12, tokens_estimate=10
        ),
        "put_trace (1 kB)": lambda: store.put_trace(summary(), b"{}" * 500, 600),
        "list_traces (20 of owner)": lambda: store.list_traces("bench", 20),
        "list_traces (20, all)": lambda: store.list_traces(None, 20),
        "cache_get": lambda: store.cache_get("route:x"),
    }
    figures = {}
    try:
        for name, call in operations.items():
            for _ in range(20):
                await call()  # warm up (cluster topology, connections)
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                await call()
                times.append((time.perf_counter() - started) * 1e6)
            times.sort()
            figures[name] = (statistics.median(times), times[int(len(times) * 0.99) - 1])
    finally:
        await store.aclose()
    return figures


async def recovery_s(url: str, watched: str, kill: Callable[[], None]) -> float:
    """Seconds from killing the primary to ``watched``'s first successful call."""
    store = RedisStore(url, timeout_s=0.25, retry_interval_s=0.1)
    minute, period = minute_window(time.time()), budget_window(time.time(), "month")
    stop = asyncio.Event()
    recovered = asyncio.Event()
    killed_at = 0.0

    async def worker(subject: str) -> None:
        while not stop.is_set():
            try:
                admission = await store.admit(subject, LIMITS, minute, period, reserve_usd=0.01)
                await store.settle(subject, admission.reservation, minute, period, 1, 0.001)
                if killed_at and subject == watched:
                    recovered.set()
            except StoreUnavailable:
                await asyncio.sleep(0.005)

    subjects = [watched] + [f"other-{i}" for i in range(3)]
    workers = [asyncio.create_task(worker(s)) for s in subjects for _ in range(2)]
    try:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(kill)
        killed_at = time.perf_counter()
        async with asyncio.timeout(60):
            await recovered.wait()
        return time.perf_counter() - killed_at
    finally:
        stop.set()
        await asyncio.gather(*workers)
        await store.aclose()


async def failover_s(root: Path, kind: str) -> float:
    """One failover of a fresh cluster (3 + 3 replicas) or Sentinel group (3 Sentinels)."""
    if kind == "cluster":
        cluster = RedisClusterServers(root, replicas_per_primary=1).start()
        try:
            victim = cluster.primary_of(tag("watched"))
            return await recovery_s(cluster.url, "watched", victim.kill)
        finally:
            cluster.stop()
    group = SentinelGroup(root, sentinels=3).start()
    try:
        return await recovery_s(group.url, "watched", group.kill_primary)
    finally:
        group.stop()


async def main(calls: int, failovers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = {}
        single = RedisServer(root / "single").start()
        try:
            results["single"] = await latencies(single.url, calls)
        finally:
            single.stop()
        cluster = RedisClusterServers(root / "cluster").start()
        try:
            results["cluster (3 primaries)"] = await latencies(cluster.url, calls)
        finally:
            cluster.stop()
        sentinel = SentinelGroup(root / "sentinel").start()
        try:
            results["sentinel (1 + 1 replica)"] = await latencies(sentinel.url, calls)
        finally:
            sentinel.stop()
        names = list(results)
        print(f"per-call latency, µs: median / p99 of {calls} sequential calls")
        print(f"  {'operation':<28}" + "".join(f"{n:>28}" for n in names))
        for operation in results[names[0]]:
            cells = "".join(
                f"{results[n][operation][0]:>17.0f} / {results[n][operation][1]:>6.0f}"
                for n in names
            )
            print(f"  {operation:<28}{cells}")
        for kind in ("cluster", "sentinel"):
            times = [await failover_s(root / f"{kind}-{i}", kind) for i in range(failovers)]
            shown = ", ".join(f"{t:.2f}" for t in times)
            print(f"failover to the first served call, {kind}: {shown} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--failovers", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.failovers))
