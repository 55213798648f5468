"""llama-server's speed and memory on this machine, with the recommended local-stack flags.

Run: ``.venv/bin/python bench/bench_llama_server.py [--models smollm2,qwen] [--requests 30]``
(needs ``scripts/setup_llama_server.sh`` and, for Qwen, ``scripts/setup_qwen25.sh``).

- **speed**: per model, one slot, prefill and decode tokens/s from llama-server's own
  ``timings`` (``prompt_per_second``, ``predicted_per_second``) on a ~500-token prompt
  never seen before (no cache reuse: ``timings.cache_n`` is printed) and 64 forced tokens
  (``ignore_eos``); the median of ``--repeats`` runs.
- **memory**: Qwen served as the policy would be (``--parallel`` 2 and 4, ``--ctx-per-slot``
  tokens per slot, the RAM prompt cache bounded by ``--cache-ram`` MiB), then ``--requests``
  short requests with distinct prompts, two at a time. The server's RSS (``VmRSS``; and
  ``RssAnon``, the part that is not the memory-mapped model file) is read after loading and
  every five requests: it must stay flat and bounded.

The figures depend on the machine's load (other processes share the cores); the 1- and
5-minute load averages are printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
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
from local_stack.processes import ManagedProcess, free_port  # noqa: E402
from local_stack.qwen25_model import qwen25_gguf  # noqa: E402

READY_TIMEOUT_S = 300.0
WORDS = [
    "river",
    "mountain",
    "quiet",
    "orange",
    "theory",
    "window",
    "silver",
    "market",
    "garden",
    "planet",
    "copper",
    "violin",
    "harbor",
    "lantern",
    "meadow",
    "engine",
    "pencil",
    "thunder",
    "canyon",
    "marble",
    "velvet",
    "glacier",
    "falcon",
    "ember",
]


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} cores"


def _memory_mib(process: ManagedProcess) -> dict[str, float]:
    """VmRSS, RssAnon and VmHWM of the server process, in MiB."""
    assert process.process is not None
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{process.process.pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def _distinct_text(seed: int, words: int) -> str:
    """Text no other seed shares a prefix with (the first word differs)."""
    return " ".join(WORDS[(seed * 7 + i * (seed % 5 + 1)) % len(WORDS)] for i in range(words))


async def _completion(client: httpx.AsyncClient, root: str, payload: dict[str, Any]) -> Any:
    reply = await client.post(root + "/completion", json=payload)
    reply.raise_for_status()
    return reply.json()


async def _speed(client: httpx.AsyncClient, root: str, repeats: int) -> dict[str, float]:
    prefill, decode, cached = [], [], []
    for run in range(repeats):
        prompt = f"Request {run}. " + _distinct_text(1000 + run, 420)
        payload = {"prompt": prompt, "n_predict": 64, "ignore_eos": True, "temperature": 0.0}
        timings = (await _completion(client, root, payload))["timings"]
        prefill.append(timings["prompt_per_second"])
        decode.append(timings["predicted_per_second"])
        cached.append(timings["cache_n"])
        prompt_n = timings["prompt_n"]
    return {
        "prompt_tokens": prompt_n,
        "prefill_tok_s": statistics.median(prefill),
        "decode_tok_s": statistics.median(decode),
        "max_cache_n": max(cached),
    }


def _start(options: LlamaServerOptions, log_dir: Path) -> ManagedProcess:
    process = managed_llama_server(options, log_dir)
    process.start()
    process.wait_ready(READY_TIMEOUT_S)
    return process


async def bench_speed(name: str, model: Path, repeats: int, log_dir: Path) -> None:
    options = LlamaServerOptions(name, model, free_port(), parallel=1, ctx_per_slot=2048)
    process = _start(options, log_dir)
    try:
        async with httpx.AsyncClient(timeout=600) as client:
            figures = await _speed(client, options.root_url, repeats)
    finally:
        process.stop()
    print(
        f"speed {name:8s}: prefill {figures['prefill_tok_s']:7.1f} tok/s "
        f"({figures['prompt_tokens']} prompt tokens, cache_n <= {figures['max_cache_n']}), "
        f"decode {figures['decode_tok_s']:6.1f} tok/s (median of {repeats}; {_load()})"
    )


async def bench_memory(
    model: Path, parallel: int, ctx_per_slot: int, cache_ram_mib: int, requests: int, log_dir: Path
) -> None:
    options = LlamaServerOptions(
        f"qwen-np{parallel}",
        model,
        free_port(),
        parallel=parallel,
        ctx_per_slot=ctx_per_slot,
        cache_ram_mib=cache_ram_mib,
    )
    process = _start(options, log_dir)
    samples: list[tuple[int, dict[str, float]]] = [(0, _memory_mib(process))]
    try:
        async with httpx.AsyncClient(timeout=600) as client:
            for start in range(0, requests, 2):

                async def one(index: int) -> None:
                    text = f"Question {index}: " + _distinct_text(index, 160)
                    payload = {"prompt": text, "n_predict": 16, "temperature": 0.7, "seed": index}
                    await _completion(client, options.root_url, payload)

                await asyncio.gather(*(one(i) for i in range(start, min(start + 2, requests))))
                done = min(start + 2, requests)
                if done % 6 == 0 or done == requests:
                    samples.append((done, _memory_mib(process)))
    finally:
        process.stop()
    print(
        f"memory qwen --parallel {parallel} --ctx-size {parallel * ctx_per_slot} "
        f"--cache-ram {cache_ram_mib} ({_load()}):"
    )
    for done, mem in samples:
        print(
            f"    after {done:3d} requests: VmRSS {mem['VmRSS']:7.1f} MiB "
            f"(RssAnon {mem['RssAnon']:6.1f}, RssFile {mem['RssFile']:7.1f}), "
            f"VmHWM {mem['VmHWM']:7.1f} MiB"
        )
    growth = samples[-1][1]["RssAnon"] - samples[1][1]["RssAnon"]
    print(f"    RssAnon change from request {samples[1][0]} to {samples[-1][0]}: {growth:+.1f} MiB")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="smollm2,qwen")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--ctx-per-slot", type=int, default=4096)
    parser.add_argument("--cache-ram", type=int, default=128, help="MiB")
    parser.add_argument("--parallel", default="2,4", help="slot counts for the memory runs")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    models = {"smollm2": smollm2_gguf, "qwen": qwen25_gguf}
    with tempfile.TemporaryDirectory(prefix="bench-llama-server-") as logs:
        for name in filter(None, args.models.split(",")):
            await bench_speed(name, models[name](), args.repeats, Path(logs))
        if not args.skip_memory:
            for parallel in (int(p) for p in args.parallel.split(",")):
                await bench_memory(
                    qwen25_gguf(),
                    parallel,
                    args.ctx_per_slot,
                    args.cache_ram,
                    args.requests,
                    Path(logs),
                )


if __name__ == "__main__":
    asyncio.run(main())
