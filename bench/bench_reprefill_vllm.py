"""Re-prefill per policy turn on vLLM (CPU): prompt tokens computed again versus tokens new.

Run: ``.venv/bin/python bench/bench_reprefill_vllm.py [--base-url URL] [--scenarios ...]
[--pool local|router-r1] [--no-cache-baseline]``.

Same episodes and figures as ``bench/bench_reprefill.py`` (SmolLM2-135M-Instruct policy,
grammar-fixed 1-, 2- and 4-route episodes, a fixed synthetic observation), played on a vLLM
server started from ``scripts/setup_vllm.sh``'s venv with automatic prefix caching and a KV
block of 32 tokens (the CPU kernel's smallest). Per turn: context length, tokens newly added
since the previous turn, tokens re-prefilled (prompt tokens minus the request's own
``usage.prompt_tokens_details.cached_tokens``) and decode speed (from vLLM's
``request_decode_time_seconds``). Target: re-prefill <= new tokens + 2 % of the context.

Scenarios: sequential episodes; two episodes interleaving their turns; four episodes at
once (continuous batching: aggregate decode tok/s). Each scenario's totals are checked
against vLLM's own ``/metrics`` counters (``prefix_cache_queries_total`` /
``prefix_cache_hits_total``). ``--no-cache-baseline`` adds the sequential episodes on a
second server started without prefix caching (every turn re-prefills its whole context).

What bounds the figures: prefix caching reuses whole KV blocks only, so a turn re-prefills
the previous prompt's last partial block (< 32 tokens) on top of its new tokens; the target
holds when that tail is under 2 % of the context (always from ~1,550 tokens of context, and
with vLLM's GPU block of 16 from ~750). The grammar-constrained turns are generated with
non-canonical token splits, so their KV is not reused either: "new" counts them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from bench_reprefill import QUESTIONS, Episode, TurnFigures, policy_prompt, report  # noqa: E402

from local_stack.checkpoints import converted_smollm2_dir, require_converted  # noqa: E402
from local_stack.processes import free_port  # noqa: E402
from local_stack.stack import ALIASES  # noqa: E402
from local_stack.vllm_cpu import (  # noqa: E402
    VLLMServerConfig,
    read_metrics,
    stop_vllm_server,
    vllm_server,
)
from server.engines.vllm import VLLMEngine, server_root  # noqa: E402

POLICY_MODEL = ALIASES["smollm2"]  # the plumbing profile's policy, served by vLLM
ROUTES = [1, 2, 4]
BLOCK_SIZE = VLLMServerConfig.block_size
COUNTERS = (
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
    "vllm:generation_tokens_total",
    "vllm:request_decode_time_seconds_sum",
)


@contextmanager
def started_vllm(*, prefix_caching: bool) -> Iterator[str]:
    """A fresh vLLM server; yields its OpenAI base URL."""
    config = VLLMServerConfig(
        model_dir=require_converted(converted_smollm2_dir()),
        port=free_port(),
        served_model_name=POLICY_MODEL,
        enable_prefix_caching=prefix_caching,
    )
    with tempfile.TemporaryDirectory() as logs:
        server = vllm_server(config, Path(logs))
        server.start()
        try:
            took = server.wait_ready(600)
            print(f"  (vLLM server ready in {took:.1f} s, prefix caching {prefix_caching})")
            yield config.base_url
        finally:
            stop_vllm_server(server)


def delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after[name] - before[name]


async def timed_turn(episode: Episode, client: httpx.AsyncClient, root: str) -> TurnFigures:
    """One turn played alone, its decode speed from vLLM's decode-time histogram."""
    before = read_metrics(root, COUNTERS)
    turn = await episode.play_turn(client)
    after = read_metrics(root, COUNTERS)
    seconds = delta(before, after, "vllm:request_decode_time_seconds_sum")
    return dataclasses.replace(turn, decode_tps=turn.completion / seconds if seconds else None)


async def play(
    base_url: str, scenario: str, client: httpx.AsyncClient, pool: str = "local"
) -> tuple[list[TurnFigures], float]:
    """Play one scenario; returns per-turn figures and the wall time.

    Each scenario asks its own variant of the questions, so no scenario finds the turns of
    an earlier one in the prefix cache (episodes are seeded, hence repeatable); the shared
    policy template is still cached across episodes, as it is in real traffic."""
    template, names = policy_prompt(pool)
    engine = VLLMEngine(client, base_url=base_url, model=POLICY_MODEL)
    root = server_root(base_url)

    def episode(name: str, index: int, routes: int) -> Episode:
        question = f"{QUESTIONS[index % len(QUESTIONS)]} ({scenario} run)"
        return Episode(name, engine, question, routes, names, seed=10 + index)

    figures: list[TurnFigures] = []
    started = time.perf_counter()
    if scenario == "sequential":
        for i, routes in enumerate(ROUTES):
            one = episode(f"{routes}-route", i, routes)
            await one.start(template)
            while not one.done:
                figures.append(await timed_turn(one, client, root))
    elif scenario == "interleaved":
        for routes in ROUTES:
            pair = [episode(f"{routes}-route/{side}", i, routes) for i, side in enumerate("AB")]
            for one in pair:
                await one.start(template)
            while not all(one.done for one in pair):
                for one in pair:
                    if not one.done:
                        figures.append(await timed_turn(one, client, root))
    else:  # concurrent: decode speed is the aggregate one, printed by cross_check
        episodes = [episode(f"{r}-route/{i}", i, r) for i, r in enumerate([1, 2, 4, 4])]

        async def run(one: Episode) -> list[TurnFigures]:
            await one.start(template)
            return [await one.play_turn(client) for _ in range(one.routes + 1)]

        for result in await asyncio.gather(*(run(e) for e in episodes)):
            figures.extend(result)
    return figures, time.perf_counter() - started


def cross_check(
    title: str,
    figures: list[TurnFigures],
    before: dict[str, float],
    after: dict[str, float],
    wall: float,
) -> None:
    queries = delta(before, after, "vllm:prefix_cache_queries_total")
    hits = delta(before, after, "vllm:prefix_cache_hits_total")
    generated = delta(before, after, "vllm:generation_tokens_total")
    computed = sum(f.reprefilled for f in figures)
    context = sum(f.context for f in figures)
    if queries:
        print(
            f"  /metrics: prompt tokens {queries:.0f} (per-request sum {context}), prefix-cache "
            f"hits {hits:.0f} ({hits / queries:.1%}), computed {queries - hits:.0f} "
            f"(per-request sum {computed})"
        )
    else:
        print(f"  /metrics: no prefix-cache counters (caching off); prompt tokens {context}")
    print(
        f"  {title}: wall {wall:.1f} s, {generated:.0f} tokens generated, "
        f"aggregate decode {generated / wall:.1f} tok/s"
    )
    later = [f for f in figures if f.turn > 0]
    if later and queries:
        excess = max(f.reprefilled - f.new for f in later)
        print(
            f"  largest re-prefill beyond the new tokens: {excess} tokens (prefix caching "
            f"reuses whole {BLOCK_SIZE}-token blocks only: at most {BLOCK_SIZE - 1} expected)"
        )


async def main_async(args: argparse.Namespace) -> int:
    scenarios: list[str] = args.scenarios

    async def measure(base_url: str, label: str, names: list[str]) -> None:
        async with httpx.AsyncClient(timeout=600) as client:
            for scenario in names:
                before = read_metrics(server_root(base_url), COUNTERS)
                figures, wall = await play(base_url, scenario, client, args.pool)
                after = read_metrics(server_root(base_url), COUNTERS)
                title = f"vLLM (CPU){label}: {scenario} episodes, {args.pool} pool prompt"
                report(title, figures)
                cross_check(scenario, figures, before, after, wall)

    if args.base_url:
        await measure(args.base_url, f" at {args.base_url}", scenarios)
    else:
        with started_vllm(prefix_caching=True) as base_url:
            await measure(base_url, ", prefix caching", scenarios)
    if args.no_cache_baseline:
        with started_vllm(prefix_caching=False) as base_url:
            await measure(base_url, ", NO prefix caching (baseline)", ["sequential"])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="A running vLLM server's OpenAI base URL (.../v1).")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=["sequential", "interleaved", "concurrent"],
        default=["sequential", "interleaved", "concurrent"],
    )
    parser.add_argument(
        "--pool",
        choices=["local", "router-r1"],
        default="local",
        help="Policy prompt: the local stack's 2-model profile, or the paper's 6-model one.",
    )
    parser.add_argument(
        "--no-cache-baseline",
        action="store_true",
        help="Also play the sequential episodes on a server without prefix caching.",
    )
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
