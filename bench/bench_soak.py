"""Soak benchmark (issue 10): one gateway worker holding 1,000 routed episodes at once.

Run: ``.venv/bin/python bench/bench_soak.py [--episodes 1000] [--waves 4]`` (see ``--help``).

One run starts the slow fake policy engine (``bench/fake_engine.py``: every turn takes
``--turn-delay-ms``), the slow fake upstream (``bench/fake_upstream.py``: every route call
takes ``--upstream-delay-ms``) and the real gateway (``router-r1 serve``, one uvicorn worker,
an API key so spend and traces are recorded, the trace archive bounded at one wave's
traces so that it is full after the first) as subprocesses on free local ports. Each wave
sends ``--episodes`` routed episodes, arriving within ``--ramp-s`` (2 s: all of them are in
flight at once long before the first can end; the scripted two-route episode: three policy
turns, two upstream calls), a mix of streamed and plain; ``--disconnect`` of them (chosen at
random) leave midway. A wave ends when every episode has. Per wave it prints:

- errors: episodes that did not end as scripted (a non-200, an error event, a wrong answer),
  the deliberate disconnects left out; and the disconnects made after the request was sent,
  with the number of 499s the gateway's own ``/metrics`` counted for the wave (they must
  match; a client that gives up while still connecting never reached the gateway: shown
  apart, as ``unsent``);
- p50/p95 latency of the completed episodes;
- the gateway's RSS at its peak during the wave and after it (client connections closed),
  its open file descriptors after it (``/proc/PID``: the engine and upstream keep-alive
  pools are most of them), and its CPU time per episode (wall time on a shared machine
  follows its load; CPU per episode does not);

then the flatness: the last wave's RSS and descriptors against the second's (the first
warms up pools and arenas; its figures are shown too). Targets: 0 errors, RSS at most
400 MB at peak, RSS and descriptors flat from wave to wave. The exit
status is 0 when every target is met. Every child process is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from bench_proxy import (  # noqa: E402
    Children,
    cpu_seconds,
    free_port,
    python_command,
    stop_on_sigterm,
    wait_listening,
)
from fake_engine import FIRST_MODEL, SECOND_MODEL  # noqa: E402
from soak_episodes import KEY, PROFILE, Outcome, Plan, play  # noqa: E402
from soak_probe import open_fds, requests_by_status, rss_mb  # noqa: E402

TARGET_RSS_MB = 400.0
FLAT_RSS_MB = 10.0  # last wave vs the second, after each: allocator noise, not growth
FLAT_FDS = 10

REGISTRY_TEMPLATE = """\
version: 1
endpoints:
  slow: {{base_url: "http://127.0.0.1:{upstream_port}/v1", max_connections: 2000}}
  policy: {{base_url: "http://127.0.0.1:{engine_port}/v1"}}
models:
  - name: {first}
    description: "A slow local stub upstream (first pool model)."
    endpoint: slow
    upstream_model: stub-a
    pricing: {{input_per_1m: 0.3, output_per_1m: 0.3}}
  - name: {second}
    description: "The same slow stub upstream under a second name."
    endpoint: slow
    upstream_model: stub-b
    pricing: {{input_per_1m: 0.9, output_per_1m: 0.9}}
profiles:
  - name: {profile}
    policy: {{endpoint: policy, model: bench/policy, engine: vllm}}
    template: qwen
    pool: [{first}, {second}]
    limits: {{max_routes: 4, max_turn_tokens: 256, max_context_tokens: 4096}}
"""


@dataclass
class Wave:
    index: int
    outcomes: list[Outcome]
    seconds: float
    rss_peak_mb: float
    rss_after_mb: float
    fds_after: int
    pooled_after: int  # of fds_after: engine and upstream keep-alive connections
    counted_499: float
    counted_200: float
    cpu_s: float  # the gateway's CPU time during the wave
    errors: list[str] = field(default_factory=list)

    @property
    def left(self) -> int:
        """Disconnects after the request was sent (the gateway must count each as a 499)."""
        return sum(1 for o in self.outcomes if o.left and o.plan.sent)

    @property
    def left_unsent(self) -> int:
        """Disconnects before the request was written (still connecting: nothing to count)."""
        return sum(1 for o in self.outcomes if o.left and not o.plan.sent)

    def latency_ms(self, q: float) -> float:
        done = sorted(o.latency_s * 1000 for o in self.outcomes if not o.left and not o.error)
        return done[min(len(done) - 1, int(q * len(done)))] if done else float("nan")


async def run_wave(
    index: int, url: str, base: str, pid: int, args: argparse.Namespace, rng: random.Random
) -> Wave:
    plans = [
        Plan(
            stream=rng.random() < args.stream,
            leave_after_s=rng.uniform(0.2, 0.8) * args.expected_s
            if rng.random() < args.disconnect
            else None,
            start_after_s=args.ramp_s * index / args.episodes,
        )
        for index in range(args.episodes)
    ]
    before = await requests_by_status(base)
    peak = rss_mb(pid)
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    connector = aiohttp.TCPConnector(limit=0)
    tracing = aiohttp.TraceConfig()

    async def body_sent(session: aiohttp.ClientSession, context: Any, params: Any) -> None:
        plan = getattr(context, "trace_request_ctx", None)
        if isinstance(plan, Plan):
            plan.sent = True

    tracing.on_request_chunk_sent.append(body_sent)
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, trace_configs=[tracing]) as session:
        outcomes = await asyncio.gather(*(play(session, url, plan) for plan in plans))
    seconds = time.perf_counter() - started
    await asyncio.sleep(args.settle_s)  # the gateway sees the closed connections, writes spend
    sampling = False
    await sampler
    after = await requests_by_status(base)
    fds, pooled = open_fds(pid, args.pooled_ports)
    wave = Wave(
        index=index,
        outcomes=list(outcomes),
        seconds=seconds,
        rss_peak_mb=max(peak, rss_mb(pid)),
        rss_after_mb=rss_mb(pid),
        fds_after=fds,
        pooled_after=pooled,
        counted_499=after.get("499", 0) - before.get("499", 0),
        counted_200=after.get("200", 0) - before.get("200", 0),
        cpu_s=cpu_seconds(pid) - cpu_before,
    )
    wave.errors = [o.error for o in outcomes if o.error]
    return wave


async def start(children: Children, workdir: Path, args: argparse.Namespace) -> tuple[str, int]:
    ports = {name: free_port() for name in ("upstream", "engine", "gateway")}
    engine = children.start(
        python_command(BENCH_DIR / "fake_engine.py", str(ports["engine"]), str(args.turn_delay_ms)),
        core=None,
    )
    upstream = children.start(
        python_command(
            BENCH_DIR / "fake_upstream.py", str(ports["upstream"]), "0", str(args.upstream_delay_ms)
        ),
        core=None,
    )
    registry = workdir / "registry.yaml"
    registry.write_text(
        REGISTRY_TEMPLATE.format(
            upstream_port=ports["upstream"],
            engine_port=ports["engine"],
            first=FIRST_MODEL,
            second=SECOND_MODEL,
            profile=PROFILE,
        )
    )
    keys = orjson.dumps([{"id": "soak", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}])
    script = Path(sys.executable).parent / "router-r1"
    gateway = children.start(
        [str(script), "serve"],
        core=None,
        env={
            "ROUTER_R1_REGISTRY": str(registry),
            "ROUTER_R1_PORT": str(ports["gateway"]),
            "ROUTER_R1_HOST": "127.0.0.1",
            "ROUTER_R1_LOG_LEVEL": "warning",
            "ROUTER_R1_LOG_ACCESS": "false",
            "ROUTER_R1_API_KEYS": keys.decode(),
            # as many engine connections as episodes in flight: the fake engine (like vLLM)
            # batches them all; the default pool of 256 would queue the rest
            "ROUTER_R1_ENGINE_MAX_CONNECTIONS": str(args.episodes + 24),
            "ROUTER_R1_ENGINE_MAX_KEEPALIVE_CONNECTIONS": str(args.episodes + 24),
            "ROUTER_R1_UPSTREAM_MAX_CONNECTIONS_TOTAL": str(2 * args.episodes),
            # the trace archive keeps the last N traces by design: bounded at one wave's worth,
            # it is full after the first wave, so any growth after that is a leak
            "ROUTER_R1_TRACE_MAX_ENTRIES": str(args.episodes),
        },
    )
    await wait_listening(
        children, engine, "fake engine", f"http://127.0.0.1:{ports['engine']}/health"
    )
    await wait_listening(
        children, upstream, "fake upstream", f"http://127.0.0.1:{ports['upstream']}/"
    )
    base = f"http://127.0.0.1:{ports['gateway']}"
    await wait_listening(children, gateway, "gateway", base + "/health")
    args.pooled_ports = {ports["engine"], ports["upstream"]}
    return base, gateway.pid


def report(waves: list[Wave], args: argparse.Namespace, load: tuple[float, float]) -> bool:
    print()
    print(
        f"{args.episodes} episodes per wave in flight at once, {args.waves} waves; turn "
        f"{args.turn_delay_ms:g} ms, upstream call {args.upstream_delay_ms:g} ms; "
        f"{args.stream:.0%} streamed, {args.disconnect:.0%} leaving midway; arrivals over "
        f"{args.ramp_s:g} s"
    )
    print(
        f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} before, {load[1]:.2f} after"
    )
    header = (
        f"{'wave':>4} {'s':>6} {'ok':>5} {'errors':>6} {'left':>5} {'499s':>5} {'unsent':>6} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'RSS peak':>9} {'RSS after':>9} {'fds':>5} "
        f"{'pooled':>6} {'other':>5} {'CPU ms/episode':>14}"
    )
    print(header)
    for wave in waves:
        ok = sum(1 for o in wave.outcomes if not o.left and not o.error)
        print(
            f"{wave.index:>4} {wave.seconds:>6.1f} {ok:>5} {len(wave.errors):>6} {wave.left:>5} "
            f"{wave.counted_499:>5.0f} {wave.left_unsent:>6} "
            f"{wave.latency_ms(0.5):>8.0f} {wave.latency_ms(0.95):>8.0f} "
            f"{wave.rss_peak_mb:>7.0f}MB {wave.rss_after_mb:>7.0f}MB {wave.fds_after:>5} "
            f"{wave.pooled_after:>6} {wave.fds_after - wave.pooled_after:>5} "
            f"{wave.cpu_s * 1000 / len(wave.outcomes):>14.1f}"
        )
        for error in sorted(set(wave.errors))[:5]:
            print(f"       error: {error}")
    # the first wave is the warm-up (connection pools, allocator arenas, the trace archive
    # filling up): flatness is judged from the second wave on; the growth over the first is
    # shown too
    first, warm, last = waves[0], waves[min(1, len(waves) - 1)], waves[-1]
    rss_growth = last.rss_after_mb - warm.rss_after_mb

    def other(wave: Wave) -> int:
        return wave.fds_after - wave.pooled_after

    fds_growth = other(last) - other(warm)
    peak = max(w.rss_peak_mb for w in waves)
    errors = sum(len(w.errors) for w in waves)
    unmatched = [w.index for w in waves if w.counted_499 != w.left]
    checks = [
        (errors == 0, f"errors: {errors} (target 0)"),
        (not unmatched, f"disconnects counted as 499 by the gateway: waves off {unmatched or '-'}"),
        (peak <= TARGET_RSS_MB, f"RSS peak {peak:.0f} MB (target <= {TARGET_RSS_MB:.0f} MB)"),
        (
            rss_growth <= FLAT_RSS_MB,
            f"RSS after the last wave vs wave {warm.index}: {rss_growth:+.1f} MB (flat: <= "
            f"{FLAT_RSS_MB:.0f} MB; vs wave 1: {last.rss_after_mb - first.rss_after_mb:+.1f} MB)",
        ),
        (
            fds_growth <= FLAT_FDS,
            f"open fds other than pooled engine/upstream connections, last wave vs wave "
            f"{warm.index}: {fds_growth:+d} (flat: <= {FLAT_FDS}; vs wave 1: "
            f"{other(last) - other(first):+d}; all fds vs wave 1: "
            f"{last.fds_after - first.fds_after:+d})",
        ),
    ]
    print()
    for passed, text in checks:
        print(f"  [{'ok' if passed else 'FAIL'}] {text}")
    return all(passed for passed, _ in checks)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=1000, help="episodes in flight per wave")
    parser.add_argument("--waves", type=int, default=4)
    parser.add_argument("--turn-delay-ms", type=float, default=300.0, help="per policy turn")
    parser.add_argument("--upstream-delay-ms", type=float, default=300.0, help="per route call")
    parser.add_argument("--stream", type=float, default=0.5, help="share of streamed episodes")
    parser.add_argument("--disconnect", type=float, default=0.1, help="share leaving midway")
    parser.add_argument("--settle-s", type=float, default=2.0, help="idle time after a wave")
    parser.add_argument(
        "--ramp-s",
        type=float,
        default=2.0,
        help="the wave's arrivals are spread over this long (all are in flight at once well "
        "before the first ends); 0: every request in the same instant",
    )
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args(argv)
    # an episode's own time: three turns and two route calls (the disconnects leave within it)
    args.expected_s = (3 * args.turn_delay_ms + 2 * args.upstream_delay_ms) / 1000
    return args


async def main_async(args: argparse.Namespace, children: Children) -> int:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="router-r1-soak-") as workdir:
        base, pid = await start(children, Path(workdir), args)
        print(f"gateway pid {pid} at {base}; RSS at start {rss_mb(pid):.0f} MB", flush=True)
        rng = random.Random(args.seed)
        url = base + "/v1/chat/completions"
        waves = []
        for index in range(1, args.waves + 1):
            wave = await run_wave(index, url, base, pid, args, rng)
            print(
                f"wave {index}: {wave.seconds:.1f} s, {len(wave.errors)} errors, "
                f"RSS peak {wave.rss_peak_mb:.0f} MB",
                flush=True,
            )
            waves.append(wave)
    return 0 if report(waves, args, (load_before, os.getloadavg()[0])) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    children = Children()
    try:
        with stop_on_sigterm():
            return asyncio.run(main_async(args, children))
    except KeyboardInterrupt:
        return 130
    finally:
        with contextlib.suppress(Exception):
            children.stop_all()


if __name__ == "__main__":
    raise SystemExit(main())
