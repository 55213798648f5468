"""Re-prefill per policy turn: prompt tokens the engine evaluates again versus tokens new to it.

Run: ``.venv/bin/python bench/bench_reprefill.py [--engine llamacpp] [--base-url URL]``.

An episode's turn k sends the whole context again (chat prompt + every earlier turn and
observation, laid out as in training). An engine that keeps the previous turn's KV state
only has to evaluate what was appended since: the last turn's text and its observation.
For 1-, 2- and 4-route episodes this script plays real turns on the engine (SmolLM2-135M by
default) and reports, per turn: context length, tokens newly added since the previous turn,
tokens the engine re-prefilled (prompt tokens minus ``usage.prompt_tokens_details
.cached_tokens``), and decode speed. Target: re-prefill <= new tokens + 2 % of the context.

Route count is fixed by the grammar of each turn (route-only turns, then an answer-only
turn); observations are a fixed synthetic upstream reply (this measures the engine, not
upstreams). Scenarios:

- sequential: one episode at a time (the KV state of turn k-1 is still there at turn k);
- interleaved: two episodes alternating turns on one engine with ONE slot (``--parallel 1``);
  each switch overwrites the other episode's KV state, so it is shown without and with the
  server's RAM prompt cache (``--cache-ram``), which saves slot states and loads them back.

``--engine llamacpp`` starts llama.cpp's ``llama-server`` (one slot) on a free port
(stopped on exit); ``--base-url`` uses a running server instead (then only the scenarios it
supports). With llama-server the cached count is ``timings.cache_n`` of ``/completion``.
Other engines (vLLM) plug in through :func:`engine_for` and :func:`start_server`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from local_stack.llama_server_process import (  # noqa: E402
    LlamaServerOptions,
    managed_llama_server,
)
from local_stack.models import smollm2_gguf  # noqa: E402
from local_stack.processes import free_port  # noqa: E402
from local_stack.stack import PLUMBING_PROFILE, local_registry_path  # noqa: E402
from router_model.episode.context import PolicyContext  # noqa: E402
from router_model.episode.engine import GenerationParams  # noqa: E402
from router_model.protocol.grammar import action_grammar  # noqa: E402
from router_model.protocol.observation import format_observation  # noqa: E402
from router_model.protocol.prompt import fill_policy_prompt  # noqa: E402
from router_model.protocol.turn import cut_turn  # noqa: E402
from router_model.registry import Registry  # noqa: E402
from server.engines.llama_server import LlamaServerEngine  # noqa: E402
from server.engines.vllm import VLLMEngine  # noqa: E402

QUESTIONS = [
    "Who wrote the novel War and Peace",
    "What is the capital city of Australia",
    "Which planet is known as the red planet",
    "In which year did the first person walk on the moon",
]
REPLY = (
    "The answer, according to several encyclopedias and reference works, is well documented. "
    "Historians and scientists agree on it, and it is taught in schools around the world; "
    "the details are given in most textbooks on the subject, together with the main dates."
)
TARGET_SHARE = 0.02


@dataclass
class TurnFigures:
    episode: str
    turn: int
    context: int
    new: int
    reprefilled: int
    completion: int
    decode_tps: float | None

    @property
    def within_target(self) -> bool:
        return self.reprefilled <= self.new + TARGET_SHARE * self.context


def route_only(grammar: str) -> str:
    return grammar.replace("action ::= answer | search", "action ::= search")


class Episode:
    """One scripted episode: ``routes`` route turns, then an answer turn."""

    def __init__(
        self, name: str, engine: Any, question: str, routes: int, names: list[str], seed: int
    ):
        self.name, self.engine, self.question, self.routes = name, engine, question, routes
        self.seed = seed
        self.route_grammar = route_only(action_grammar(names))
        self.answer_grammar = action_grammar([])
        self.context: PolicyContext | None = None
        self.turn = 0
        self.previous_prompt = 0

    async def start(self, template: str) -> None:
        ids = await self.engine.chat_prompt_ids(fill_policy_prompt(template, self.question))
        self.context = PolicyContext(ids, max_context_tokens=4096, max_observation_tokens=600)

    @property
    def done(self) -> bool:
        return self.turn > self.routes

    async def play_turn(self, client: httpx.AsyncClient) -> TurnFigures:
        assert self.context is not None
        final = self.turn == self.routes
        params = GenerationParams(
            max_tokens=256,
            temperature=1.0,
            top_p=0.95,
            seed=self.seed * 100 + self.turn,
            grammar=self.answer_grammar if final else self.route_grammar,
        )
        prompt = self.context.engine_prompt()
        payload = self.engine._completion_payload(prompt, params, stream=False)
        native = isinstance(self.engine, LlamaServerEngine)
        path = "/completion" if native else "/v1/completions"
        reply = await client.post(self.engine._root + path, json=payload)
        reply.raise_for_status()
        data = reply.json()
        timings = data.get("timings") or {}
        if native:  # llama-server's own figures
            cached = int(timings.get("cache_n") or 0)
            completion = int(data["tokens_predicted"])
            text = data["content"] + (data.get("stopping_word") or "")
        else:
            usage = data["usage"]
            cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
            completion = int(usage["completion_tokens"])
            text = data["choices"][0]["text"]
        decode_ms = float(timings.get("predicted_ms") or 0.0)
        figures = TurnFigures(
            episode=self.name,
            turn=self.turn,
            context=len(prompt),
            new=len(prompt) - self.previous_prompt,
            reprefilled=len(prompt) - cached,
            completion=completion,
            decode_tps=completion / (decode_ms / 1000) if decode_ms > 0 else None,
        )
        self.previous_prompt = len(prompt)
        text = cut_turn(text)
        self.context.append_turn(text, await self.engine.tokenize(text))
        if not final:
            observation = format_observation(REPLY)
            self.context.append_observation(observation, await self.engine.tokenize(observation))
        self.turn += 1
        return figures


def engine_for(kind: str, client: httpx.AsyncClient, base_url: str, model: str) -> Any:
    if kind == "llamacpp":
        return LlamaServerEngine(client, base_url=base_url, model=model)
    return VLLMEngine(client, base_url=base_url, model=model)


@contextmanager
def start_server(kind: str, *, prompt_cache: bool, threads: int) -> Iterator[str]:
    """A fresh engine server for one scenario; yields its OpenAI base URL."""
    if kind != "llamacpp":
        raise SystemExit(f"--engine {kind}: pass --base-url of a running server")
    spec = LlamaServerOptions(
        "bench-policy",
        smollm2_gguf(),
        free_port(),
        alias="policy",
        parallel=1,  # one slot: interleaved episodes overwrite each other's KV state
        ctx_per_slot=4096,
        threads=threads,
        cache_ram_mib=256 if prompt_cache else 0,
    )
    with tempfile.TemporaryDirectory() as logs:
        server = managed_llama_server(spec, Path(logs))
        server.start()
        try:
            took = server.wait_ready(180)
            print(f"  (llama-server ready in {took:.1f} s, RAM prompt cache {prompt_cache})")
            yield spec.base_url
        finally:
            server.stop()


def policy_prompt(pool: str) -> tuple[str, list[str]]:
    """The policy template and pool names: the local stack's profile (2 models) or the
    paper's ``router-r1`` profile of ``model_registry.yaml`` (6 models, a longer prompt)."""
    if pool == "local":
        registry, name = Registry.from_file(local_registry_path()), PLUMBING_PROFILE
    else:
        registry, name = Registry.from_file(REPO_ROOT / "model_registry.yaml", environ={}), pool
    profile = registry.profile(name)
    assert profile is not None, f"no profile {name!r}"
    return registry.policy_template(profile), [m.name for m in registry.pool(profile)]


async def run_scenario(
    kind: str, base_url: str, model: str, *, routes: list[int], interleave: bool
) -> list[TurnFigures]:
    template, names = policy_prompt("local")
    async with httpx.AsyncClient(timeout=300) as client:
        engine = engine_for(kind, client, base_url, model)
        figures: list[TurnFigures] = []
        if interleave:
            pair = [
                Episode(f"{r}-route/{side}", engine, QUESTIONS[n % 4], r, names, seed=n)
                for n, (r, side) in enumerate((r, side) for r in routes for side in "AB")
            ]
            for a, b in zip(pair[::2], pair[1::2], strict=True):
                await a.start(template)
                await b.start(template)
                while not (a.done and b.done):
                    for episode in (a, b):
                        if not episode.done:
                            figures.append(await episode.play_turn(client))
        else:
            for i, r in enumerate(routes):
                episode = Episode(f"{r}-route", engine, QUESTIONS[i % 4], r, names, seed=i)
                await episode.start(template)
                while not episode.done:
                    figures.append(await episode.play_turn(client))
        return figures


def report(title: str, figures: list[TurnFigures]) -> None:
    print(f"\n{title}")
    print(
        f"  {'episode':<14}{'turn':>5}{'context':>9}{'new':>7}{'re-prefill':>12}"
        f"{'limit':>8}{'ok':>5}{'decode tok/s':>14}"
    )
    for f in figures:
        limit = f.new + TARGET_SHARE * f.context
        tps = f"{f.decode_tps:.1f}" if f.decode_tps else "-"
        print(
            f"  {f.episode:<14}{f.turn:>5}{f.context:>9}{f.new:>7}{f.reprefilled:>12}"
            f"{limit:>8.0f}{'yes' if f.within_target else 'NO':>5}{tps:>14}"
        )
    later = [f for f in figures if f.turn > 0]
    if later:
        ratio = sum(f.reprefilled for f in later) / max(sum(f.new for f in later), 1)
        ok = sum(f.within_target for f in later)
        print(
            f"  turns after the first: re-prefilled/new = {ratio:.2f}; "
            f"within target {ok}/{len(later)}"
        )
    speeds = [f.decode_tps for f in figures if f.decode_tps]
    if speeds:
        print(f"  decode: median {statistics.median(speeds):.1f} tok/s")


async def main_async(args: argparse.Namespace) -> int:
    routes = [1, 2, 4]
    if args.base_url:
        figures = await run_scenario(
            args.engine, args.base_url, args.model, routes=routes, interleave=False
        )
        report(f"{args.engine} at {args.base_url}: sequential episodes", figures)
        return 0
    scenarios = [
        ("sequential episodes (1, 2, 4 routes)", False, False),
        ("two interleaved episodes, no state cache", True, False),
        ("two interleaved episodes, RAM state cache (--cache true)", True, True),
    ]
    for title, interleave, cache in scenarios:
        with start_server(args.engine, prompt_cache=cache, threads=args.threads) as base_url:
            figures = await run_scenario(
                args.engine, base_url, args.model, routes=routes, interleave=interleave
            )
        report(f"{args.engine}: {title}", figures)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["llamacpp", "vllm"], default="llamacpp")
    parser.add_argument("--base-url", help="A running engine's OpenAI base URL (.../v1).")
    parser.add_argument("--model", default="policy", help="Model name sent to the engine.")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads.")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
