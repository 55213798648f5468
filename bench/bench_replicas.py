"""Policy replicas: episode affinity vs round-robin, and a replica killed mid-run.

Run: ``.venv/bin/python bench/bench_replicas.py [--episodes 8] [--concurrency 4]``.

Starts two real llama.cpp policy servers (``llama-server`` serving the local stack's
SmolLM2-135M plumbing policy, two slots and a RAM prompt cache each, one thread each), a stub
upstream (``bench/fake_upstream.py``: the routed calls cost nothing to wait for), and the
gateway in-process with the local stack's grammar-constrained ``router-r1-local-smollm2``
profile. Then it
plays the same concurrent multi-turn episodes (same questions and seeds) four ways:

- ``single``: the profile names one replica, with half the concurrency (the reference: the
  same episodes per server as with two replicas, every turn finding its prefix there);
- ``affinity``: both replicas, each episode pinned to one (the gateway's default);
- ``round-robin``: both replicas, every engine call to the next one (what a plain load
  balancer does: no affinity);
- ``failover``: both replicas with affinity, and one replica killed (SIGKILL, by the PID this
  script started) while episodes are running on it.

Per scenario, from the ``router`` trace of every response (the engine's own figures:
``usage.prompt_tokens`` and ``usage.prompt_tokens_details.cached_tokens`` of each turn), for
the turns after an episode's first: prompt tokens, tokens new since the episode's previous
turn (its turn text and observation), tokens re-prefilled (prompt minus cached), and two
prefix-cache hit ratios: over the whole prompt (cached / prompt), and over the episode's own
context (the tokens beyond the prefix every episode shares, the policy template, which every
replica has cached whatever the routing: ``shared`` = the largest first-turn cached count).
Targets: affinity's hit ratios within 5 % of the single replica's; round-robin's own-context
ratio far below; the failover run with 0 failed requests and the failovers in the traces.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.fake_upstream import make_app  # noqa: E402
from local_stack.llama_server_process import (  # noqa: E402
    LlamaServerOptions,
    managed_llama_server,
)
from local_stack.models import smollm2_gguf  # noqa: E402
from local_stack.processes import ManagedProcess, free_port  # noqa: E402
from local_stack.stack import ALIASES, local_registry_path  # noqa: E402
from local_stack.stack import PLUMBING_PROFILE as LOCAL_PROFILE  # noqa: E402
from router_model.registry import Registry, RegistryFile, read_registry_file  # noqa: E402
from server.app import create_app  # noqa: E402
from server.settings import Settings  # noqa: E402

QUESTIONS = [
    "Who wrote the novel War and Peace?",
    "What is the capital city of Australia?",
    "Which planet is known as the red planet?",
    "In which year did the first person walk on the moon?",
    "What is the largest ocean on Earth?",
    "Who painted the Mona Lisa?",
    "What is the chemical symbol for gold?",
    "How many continents are there?",
]
TARGET_SHARE = 0.05


@dataclass
class Turn:
    prompt: int
    cached: int
    new: int

    @property
    def reprefilled(self) -> int:
        return self.prompt - self.cached


@dataclass
class Figures:
    name: str
    requests: int = 0
    failed: list[str] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    first_turns: int = 0
    shared: int = 0  # the largest first-turn cached count: the prefix every episode shares
    failovers: list[tuple[str, int, list[str], str | None]] = field(default_factory=list)
    replicas: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, router: dict[str, Any]) -> None:
        previous: int | None = None
        first = True
        for step in router["steps"]:
            prompt = int(step["policy_prompt_tokens"])
            if step["action"] == "fallback" or prompt == 0:
                continue
            if step.get("replica"):
                self.replicas[step["replica"]] = self.replicas.get(step["replica"], 0) + 1
            cached = int(step["cached_tokens"] or 0)
            if step.get("failover_from"):  # its usage adds the cut-off attempt: not a turn here
                self.failovers.append(
                    (router["request_id"], step["index"], step["failover_from"], step["replica"])
                )
                previous, first = None, False
                continue
            if first:
                self.first_turns += 1
                self.shared = max(self.shared, cached)
                first = False
            elif previous is not None:
                self.turns.append(Turn(prompt, cached, prompt - previous))
            previous = prompt

    @property
    def hit_ratio(self) -> float:
        prompt = sum(t.prompt for t in self.turns)
        return sum(t.cached for t in self.turns) / prompt if prompt else 0.0

    @property
    def own_hit_ratio(self) -> float:
        """Cached / prompt over each turn's tokens beyond the shared prefix."""
        own = sum(max(t.prompt - self.shared, 0) for t in self.turns)
        cached = sum(max(t.cached - self.shared, 0) for t in self.turns)
        return cached / own if own else 0.0

    def report(self) -> None:
        later = self.turns
        n = max(len(later), 1)
        print(
            f"\n{self.name}: {self.requests} requests in {self.seconds:.1f} s, "
            f"{len(self.failed)} failed"
        )
        print(f"  turns after the first: {len(later)} (first turns: {self.first_turns})")
        print(
            f"  per turn: prompt {sum(t.prompt for t in later) / n:.0f}, "
            f"new {sum(t.new for t in later) / n:.0f}, "
            f"re-prefilled {sum(t.reprefilled for t in later) / n:.0f}, "
            f"cached {sum(t.cached for t in later) / n:.0f} tokens"
        )
        print(
            f"  prefix-cache hit ratio: whole prompt {self.hit_ratio:.3f}, the episode's own "
            f"context {self.own_hit_ratio:.3f} (beyond the {self.shared} shared tokens)"
        )
        print(f"  policy turns per replica: {dict(sorted(self.replicas.items()))}")
        for request_id, index, failed, replica in self.failovers:
            print(f"  failover: {request_id} step {index}: {failed} -> {replica}")
        for failure in self.failed:
            print(f"  FAILED: {failure}")


def registry_for(policy_ports: Sequence[int], upstream_port: int, max_routes: int) -> Registry:
    """The local stack's registry with the policy on ``policy_ports`` (one endpoint each) and
    the pool models on the stub upstream."""
    spec = read_registry_file(local_registry_path(), environ={})
    data = spec.model_dump(mode="json")
    stub = {"base_url": f"http://127.0.0.1:{upstream_port}/v1", "read_timeout_s": 30}
    data["endpoints"] = {"stub": stub}
    names = [f"policy-{chr(ord('a') + i)}" for i in range(len(policy_ports))]
    for name, port in zip(names, policy_ports, strict=True):
        data["endpoints"][name] = {"base_url": f"http://127.0.0.1:{port}/v1", "read_timeout_s": 300}
    for model in data["models"]:
        model["endpoint"] = "stub"
    (profile,) = [p for p in data["profiles"] if p["name"] == LOCAL_PROFILE]
    profile["policy"]["endpoint"] = None
    profile["policy"]["endpoints"] = names
    profile["limits"].update(max_routes=max_routes, max_turn_tokens=96, deadline_s=600)
    return Registry(RegistryFile.model_validate(data), "<bench>")


@asynccontextmanager
async def stub_upstream() -> AsyncIterator[int]:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


@asynccontextmanager
async def gateway(registry: Registry, selection: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.from_flat(
        {
            "engine_replica_selection": selection,
            "engine_health_interval_s": 1.0,
            "cache_enabled": False,
            "log_access": False,
            "upstream_total_timeout_s": 60,
        }
    )
    app = create_app(settings, registry=registry)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway.bench", timeout=900
        ) as client:
            yield client


async def play(
    client: httpx.AsyncClient, figures: Figures, episodes: int, concurrency: int
) -> None:
    slots = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        body = {
            "model": LOCAL_PROFILE,
            "messages": [{"role": "user", "content": QUESTIONS[n % len(QUESTIONS)]}],
            "seed": 1000 + n,
        }
        async with slots:
            try:
                response = await client.post("/v1/chat/completions", json=body)
            except Exception as exc:
                figures.failed.append(f"episode {n}: {type(exc).__name__}: {exc}")
                return
        figures.requests += 1
        if response.status_code != 200:
            figures.failed.append(f"episode {n}: HTTP {response.status_code} {response.text[:200]}")
            return
        figures.add(response.json()["router"])

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(episodes)))
    figures.seconds = time.perf_counter() - started


async def kill_after(server: ManagedProcess, after_s: float) -> None:
    """SIGKILL ``server`` (by the PID this script started) ``after_s`` into the run."""
    await asyncio.sleep(after_s)
    assert server.process is not None
    print(f"  killing {server.name} (pid {server.process.pid}) mid-run")
    server.process.kill()


@asynccontextmanager
async def policy_servers(count: int, log_dir: Path) -> AsyncIterator[list[ManagedProcess]]:
    """``count`` fresh llama.cpp policy servers (empty caches), stopped on exit."""
    specs = [
        LlamaServerOptions(
            f"policy-{chr(ord('a') + i)}",
            smollm2_gguf(),
            free_port(),
            alias=ALIASES["smollm2"],
            parallel=2,
            ctx_per_slot=4096,
            threads=1,
            cache_ram_mib=256,
        )
        for i in range(count)
    ]
    servers = [managed_llama_server(spec, log_dir) for spec in specs]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready(300)
        yield servers
    finally:
        for server in servers:
            server.stop()


def port_of(server: ManagedProcess) -> int:
    return int(server.ready_url.rsplit(":", 1)[1].split("/")[0])


async def scenario(
    name: str,
    replicas: int,
    selection: str,
    concurrency: int,
    args: argparse.Namespace,
    upstream_port: int,
    log_dir: Path,
    *,
    kill_after_s: float | None = None,
) -> Figures:
    """One scenario on fresh servers (no scenario finds another's episodes in a cache)."""
    figures = Figures(name)
    async with policy_servers(replicas, log_dir) as servers:
        ports = [port_of(server) for server in servers]
        registry = registry_for(ports, upstream_port, args.max_routes)
        async with gateway(registry, selection) as client:
            killer = None
            if kill_after_s is not None:
                killer = asyncio.create_task(kill_after(servers[-1], kill_after_s))
            await play(client, figures, args.episodes, concurrency)
            if killer is not None:
                await killer
    figures.report()
    return figures


async def main_async(args: argparse.Namespace) -> int:
    half = max(args.concurrency // 2, 1)
    full = args.concurrency
    with tempfile.TemporaryDirectory() as logs:
        log_dir = Path(logs)
        async with stub_upstream() as port:
            results = [
                await scenario(
                    f"single replica, concurrency {half}", 1, "affinity", half, args, port, log_dir
                ),
                await scenario(
                    f"affinity, concurrency {full}", 2, "affinity", full, args, port, log_dir
                ),
                await scenario(
                    f"round-robin, concurrency {full}", 2, "round_robin", full, args, port, log_dir
                ),
                await scenario(
                    "failover (affinity, policy-b killed mid-run)",
                    2,
                    "affinity",
                    full,
                    args,
                    port,
                    log_dir,
                    kill_after_s=args.kill_after_s,
                ),
            ]
    single, affinity, round_robin, failover = results
    print("\nsummary (prefix-cache hit ratio of turns after the first: whole prompt / own context)")
    ok = True
    for figures in (single, affinity, round_robin):
        per_turn = sum(t.reprefilled for t in figures.turns) / max(len(figures.turns), 1)
        print(
            f"  {figures.name:<34} {figures.hit_ratio:.3f} / {figures.own_hit_ratio:.3f}, "
            f"re-prefilled {per_turn:.1f} tokens per turn"
        )
    for label, mine, reference in (
        ("whole prompt", affinity.hit_ratio, single.hit_ratio),
        ("own context", affinity.own_hit_ratio, single.own_hit_ratio),
    ):
        gap = (reference - mine) / max(reference, 1e-9)
        within = gap <= TARGET_SHARE
        ok = ok and within
        verdict = "ok" if within else "NOT within 5 %"
        print(f"  affinity vs single, {label}: {gap:+.1%} below the single replica ({verdict})")
    print(
        f"  failover run: {len(failover.failed)} failed requests of {failover.requests}, "
        f"{len(failover.failovers)} failovers in traces"
    )
    ok = ok and not failover.failed and bool(failover.failovers)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=8, help="Episodes per scenario.")
    parser.add_argument("--concurrency", type=int, default=4, help="Episodes at a time.")
    parser.add_argument("--max-routes", type=int, default=2, help="The profile's max_routes.")
    parser.add_argument(
        "--kill-after-s",
        type=float,
        default=4.0,
        help="Seconds into the failover run when policy-b is killed.",
    )
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
