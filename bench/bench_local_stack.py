"""The local stack under load: episode latency, tokens/s, re-prefill, and every server's RSS.

Run: ``.venv/bin/python bench/bench_local_stack.py [--profile router-r1-local]
[--sequential 12] [--episodes 100] [--concurrency 4] [--json out.json]``.

Starts the local stack's two ``llama-server`` processes exactly as ``router-r1 up`` does
(:func:`local_stack.stack.local_server_specs`: Qwen2.5-Coder-1.5B and SmolLM2-135M, four
slots each, bounded KV and RAM prompt cache) and the gateway in-process with the packaged
local registry, then plays real episodes of ``--profile`` (questions of the shipped smoke
set, cycled, a seed each):

- ``sequential``: ``--sequential`` episodes one at a time (concurrency 1);
- ``slots``: ``--episodes`` episodes ``--concurrency`` at a time (the servers' slots serve
  them together, continuous batching).

Per phase, from the ``router`` trace of every response: episode latency p50/p95, outcomes,
routes; the policy's decode rate (completion tokens / policy time, per turn) and the phase's
throughput (all completion tokens, policy and pool, / wall time); for each turn after an
episode's first, the prompt tokens new since its previous turn (its turn text and
observation) and those re-prefilled (prompt minus ``timings.cache_n``). Every second the RSS
of each llama-server (``/proc/<pid>/status`` VmRSS, by the PID this script started) and of
this process (the in-process gateway) is sampled: the table shows it after every tenth of
the run, and the target is flat and bounded (max minus the value after the first 10 % of
the slots phase, and the max against the bound the settings give).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from local_stack.llama_server_process import managed_llama_server  # noqa: E402
from local_stack.processes import ManagedProcess  # noqa: E402
from local_stack.stack import (  # noqa: E402
    LOCAL_PROFILE,
    PORT_ENV,
    local_registry_path,
    local_server_specs,
)
from router_model.eval import SMOKE_FILE, load_questions  # noqa: E402
from router_model.registry import Registry  # noqa: E402
from server.app import create_app  # noqa: E402
from server.settings import Settings  # noqa: E402

FLAT_MB = 64.0  # RSS growth over the slots phase that still counts as flat (allocator noise)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else 0.0


@dataclass
class Phase:
    name: str
    concurrency: int
    latencies_s: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    routes: list[int] = field(default_factory=list)
    decode_tps: list[float] = field(default_factory=list)
    new_tokens: list[int] = field(default_factory=list)
    reprefilled: list[int] = field(default_factory=list)
    completion_tokens: int = 0
    errors: int = 0
    seconds: float = 0.0
    rss: list[dict[str, float]] = field(default_factory=list)  # one sample per second

    def add(self, router: dict[str, Any], latency_s: float) -> None:
        self.latencies_s.append(latency_s)
        self.outcomes[router["outcome"]] = self.outcomes.get(router["outcome"], 0) + 1
        totals = router["totals"]
        self.routes.append(int(totals.get("routes") or 0))
        self.completion_tokens += int(totals.get("policy_completion_tokens") or 0)
        self.completion_tokens += int(totals.get("upstream_completion_tokens") or 0)
        previous = 0
        for step in router["steps"]:
            prompt = int(step["policy_prompt_tokens"] or 0)
            if not prompt:  # the fallback step: no policy turn
                continue
            ms, tokens = float(step["policy_latency_ms"] or 0), step["policy_completion_tokens"]
            if ms > 0 and tokens:
                self.decode_tps.append(tokens / (ms / 1000))
            if previous:
                self.new_tokens.append(prompt - previous)
                self.reprefilled.append(prompt - int(step["cached_tokens"] or 0))
            previous = prompt

    def summary(self) -> dict[str, Any]:
        later = len(self.new_tokens)
        return {
            "phase": self.name,
            "concurrency": self.concurrency,
            "episodes": len(self.latencies_s),
            "errors": self.errors,
            "seconds": round(self.seconds, 1),
            "latency_p50_s": round(pct(self.latencies_s, 0.5), 1),
            "latency_p95_s": round(pct(self.latencies_s, 0.95), 1),
            "episodes_per_min": round(60 * len(self.latencies_s) / self.seconds, 2)
            if self.seconds
            else 0.0,
            "outcomes": self.outcomes,
            "routes_mean": round(statistics.fmean(self.routes), 2) if self.routes else 0.0,
            "policy_decode_tps_median": round(statistics.median(self.decode_tps), 1)
            if self.decode_tps
            else None,
            "throughput_tokens_per_s": round(self.completion_tokens / self.seconds, 1)
            if self.seconds
            else 0.0,
            "later_turns": later,
            "new_tokens_per_turn": round(statistics.fmean(self.new_tokens), 1) if later else None,
            "reprefilled_per_turn": round(statistics.fmean(self.reprefilled), 1) if later else None,
            "reprefilled_p95": pct([float(r) for r in self.reprefilled], 0.95) if later else None,
        }


@asynccontextmanager
async def gateway(registry: Registry) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.from_flat(
        {
            "cache_enabled": False,  # every route reaches its model
            "upstream_keepalive_expiry_s": 4.0,  # under llama-server's 5 s idle timeout
            "log_access": False,
            "upstream_total_timeout_s": 300,
            "engine_read_timeout_s": 300,
            "registry_reload_interval_s": 0,
        }
    )
    app = create_app(settings, registry=registry)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway.bench", timeout=900
        ) as client:
            yield client


async def sample_rss(
    servers: list[ManagedProcess], phase: Phase, stop: asyncio.Event, done: list[int]
) -> None:
    pids = {s.name.split("'")[1]: s.process.pid for s in servers if s.process is not None}
    while not stop.is_set():
        sample = {name: rss_mb(pid) for name, pid in pids.items()}
        sample["gateway"] = rss_mb(os.getpid())
        sample["done"] = float(done[0])
        phase.rss.append(sample)
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


async def play(
    client: httpx.AsyncClient,
    phase: Phase,
    profile: str,
    questions: list[str],
    episodes: int,
    servers: list[ManagedProcess],
    seed0: int,
) -> None:
    slots = asyncio.Semaphore(phase.concurrency)
    done = [0]
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(servers, phase, stop, done))

    async def one(n: int) -> None:
        body = {
            "model": profile,
            "messages": [{"role": "user", "content": questions[n % len(questions)]}],
            "seed": seed0 + n,
        }
        async with slots:
            started = time.perf_counter()
            try:
                response = await client.post("/v1/chat/completions", json=body)
                response.raise_for_status()
                phase.add(response.json()["router"], time.perf_counter() - started)
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                phase.errors += 1
                print(f"  episode {n}: {type(exc).__name__}: {exc}", flush=True)
            done[0] += 1
            if done[0] % 10 == 0 and phase.rss:
                rss = ", ".join(f"{k} {v:.0f}" for k, v in phase.rss[-1].items() if k != "done")
                print(f"  {phase.name}: {done[0]}/{episodes} episodes; RSS MB {rss}", flush=True)

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(episodes)))
    phase.seconds = time.perf_counter() - started
    stop.set()
    await sampler


def rss_table(phases: list[Phase], names: list[str]) -> list[str]:
    lines = [f"{'phase':<11} {'done':>5} " + " ".join(f"{n + ' MB':>12}" for n in names)]
    for phase in phases:
        samples = phase.rss
        if not samples:
            continue
        picks = sorted({min(int(len(samples) * k / 10), len(samples) - 1) for k in range(11)})
        for i in picks:
            s = samples[i]
            row = " ".join(f"{s[n]:>12.0f}" for n in names)
            lines.append(f"{phase.name:<11} {int(s['done']):>5} {row}")
    return lines


def with_limits(registry: Registry, args: argparse.Namespace) -> Registry:
    """``registry`` with ``--max-routes``/``--upstream-max-tokens`` applied to the profile."""
    limits = {
        key: value
        for key, value in (
            ("max_routes", args.max_routes),
            ("upstream_max_tokens", args.upstream_max_tokens),
        )
        if value is not None
    }
    profiles = tuple(
        p.model_copy(update={"limits": p.limits.model_copy(update=limits)})
        if p.name == args.profile
        else p
        for p in registry.spec.profiles
    )
    return Registry(registry.spec.model_copy(update={"profiles": profiles}), registry.source)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=LOCAL_PROFILE)
    parser.add_argument("--sequential", type=int, default=12, help="episodes one at a time")
    parser.add_argument("--episodes", type=int, default=100, help="episodes in the slots phase")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-routes", type=int, default=None, help="override the profile's")
    parser.add_argument(
        "--upstream-max-tokens", type=int, default=None, help="override the profile's"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    return asyncio.run(run(args))


async def run(args: argparse.Namespace) -> int:
    specs = local_server_specs(n_threads=args.threads, parallel=args.concurrency)
    questions = [item.question for item in load_questions(SMOKE_FILE)]
    with tempfile.TemporaryDirectory() as logs:
        servers = [managed_llama_server(spec, Path(logs)) for spec in specs]
        try:
            for server in servers:
                server.start()
            for server in servers:
                took = server.wait_ready(300)
                print(f"  {server.name} ready in {took:.1f} s", flush=True)
            idle = {
                spec.name: rss_mb(s.process.pid)
                for spec, s in zip(specs, servers, strict=True)
                if s.process
            }
            environ = {PORT_ENV[spec.name]: str(spec.port) for spec in specs}
            registry = with_limits(Registry.from_file(local_registry_path(), environ=environ), args)
            phases = [Phase("sequential", 1), Phase("slots", args.concurrency)]
            async with gateway(registry) as client:
                await play(client, phases[0], args.profile, questions, args.sequential, servers, 0)
                await play(client, phases[1], args.profile, questions, args.episodes, servers, 1000)
        finally:
            for server in servers:
                server.stop()
    names = [spec.name for spec in specs] + ["gateway"]
    summaries = [p.summary() for p in phases]
    print(
        f"\nprofile {args.profile} (overrides: max_routes {args.max_routes}, "
        f"upstream_max_tokens {args.upstream_max_tokens}); servers: "
        + "; ".join(
            f"{s.name} {s.parallel} slots x {s.ctx_per_slot} ctx, cache-ram {s.cache_ram_mib} MiB"
            for s in specs
        )
    )
    print("RSS idle (MB): " + ", ".join(f"{n} {v:.0f}" for n, v in idle.items()))
    for summary in summaries:
        print(json.dumps(summary))
    print("\nRSS over the run (MB):")
    print("\n".join(rss_table(phases, names)))
    slots = phases[1].rss
    verdicts = []
    if slots:
        warm = slots[max(len(slots) // 10, 0)]
        for name in names:
            peak = max(s[name] for s in phases[0].rss + slots)
            growth = max(s[name] for s in slots) - warm[name]
            verdicts.append(
                (
                    growth <= FLAT_MB,
                    f"{name}: peak {peak:.0f} MB, growth after warm-up "
                    f"{growth:+.0f} MB (flat: <= {FLAT_MB:.0f})",
                )
            )
    errors = sum(p.errors for p in phases)
    verdicts.append((errors == 0, f"{errors} failed requests"))
    for ok, text in verdicts:
        print(f"  [{'ok' if ok else 'FAIL'}] {text}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "profile": args.profile,
                    "idle_rss_mb": idle,
                    "phases": summaries,
                    "rss": {p.name: p.rss for p in phases},
                },
                indent=1,
            )
        )
    return 0 if all(ok for ok, _ in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
