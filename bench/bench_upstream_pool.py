"""CPU per upstream call of the upstream pool alone (the gateway's data plane to its upstreams).

Run: ``.venv/bin/python bench/bench_upstream_pool.py [--calls N] [--rounds R]``. It starts the
stub upstream (``bench/fake_upstream.py``) in another process (pinned to another core when
there are two), then, in this process, makes ``N`` calls per scenario through one
:class:`UpstreamPool` (default transport: aiohttp called directly) and reports this process's
CPU time per call (``time.process_time``), the median of ``R`` rounds:

- route_call c=1: Router-R1 sub-queries, one at a time;
- chat c=16: non-streamed passthrough calls, 16 at a time;
- chat_stream c=16: streamed passthrough calls read to the end, 16 at a time.

The stub's CPU is not counted, so the figures are what the pool (and aiohttp under it) costs
per call. ``--in-process`` replaces the network with a transport that answers a canned reply
at once (no stub, no sockets): what is left is the pool's own Python work per call, the part a
change of the pool changes, measured without the noise of the network stack; the minimum of
the rounds is shown (the least disturbed by other work on the machine).

To compare two versions of the code on the same machine state, run it once per checkout,
alternately (``PYTHONPATH=<other checkout>`` from a directory outside both).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx

from router_model.registry import Endpoint, ModelSpec, Pricing, Registry, RegistryFile
from server.upstream import UpstreamPool, UpstreamSettings

BENCH_DIR = Path(__file__).resolve().parent
MESSAGES = [{"role": "user", "content": "What is the capital of Australia?"}]
REPLY = (
    b'{"id":"chatcmpl-stub","object":"chat.completion","created":1700000000,"model":"stub",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Canberra."},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":6}}'
)
STREAM = (
    b'data: {"choices":[{"index":0,"delta":{"content":"Canberra."},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":6}}\n\n'
    b"data: [DONE]\n\n"
)


class CannedTransport(httpx.AsyncBaseTransport):
    """Answers every request at once with a canned completion (or stream)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if b'"stream":true' in request.content:
            return httpx.Response(
                200, headers=[(b"content-type", b"text/event-stream")], content=STREAM
            )
        return httpx.Response(200, headers=[(b"content-type", b"application/json")], content=REPLY)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def registry(port: int) -> Registry:
    endpoint = Endpoint(base_url=f"http://127.0.0.1:{port}/v1", max_connections=1000)
    model = ModelSpec(
        name="Bench-Model",
        description="The stub upstream.",
        endpoint="stub",
        upstream_model="stub-a",
        pricing=Pricing(input_per_1m=0.3, output_per_1m=0.6),
    )
    return Registry(RegistryFile(endpoints={"stub": endpoint}, models=(model,)))


async def wait_listening(port: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"http://127.0.0.1:{port}/"):
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError("the stub upstream did not start")


async def cpu_per_call(call: Callable[[], Awaitable[None]], calls: int, concurrency: int) -> float:
    """CPU seconds of this process per call, for ``calls`` calls ``concurrency`` at a time."""
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - started) / calls


async def run(args: argparse.Namespace, port: int) -> dict[str, list[float]]:
    reg = registry(port)
    model = reg.models[0]
    transport = CannedTransport() if args.in_process else None
    pool = UpstreamPool(lambda: reg, UpstreamSettings(), transport=transport)

    async def route() -> None:
        reply = await pool.route_call(model, "q: the capital of Australia?", max_tokens=32)
        assert reply.status == "ok", reply.error

    async def chat() -> None:
        await pool.chat(model, {"messages": MESSAGES})

    async def stream() -> None:
        opened = await pool.chat_stream(model, {"messages": MESSAGES, "stream": True})
        async with opened:
            async for _ in opened:
                pass

    scenarios: dict[str, tuple[Callable[[], Awaitable[None]], int]] = {
        "route_call c=1": (route, 1),
        "chat c=16": (chat, 16),
        "chat_stream c=16": (stream, 16),
    }
    figures: dict[str, list[float]] = {name: [] for name in scenarios}
    async with pool:
        for call, concurrency in scenarios.values():
            await cpu_per_call(call, args.warmup, concurrency)
        for _ in range(args.rounds):
            for name, (call, concurrency) in scenarios.items():
                figures[name].append(await cpu_per_call(call, args.calls, concurrency))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per scenario and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median is shown)")
    parser.add_argument("--warmup", type=int, default=500, help="calls before measuring")
    parser.add_argument(
        "--in-process", action="store_true", help="no network: a canned reply at once"
    )
    args = parser.parse_args(argv)
    if args.in_process:
        figures = asyncio.run(run(args, 9))
        report(args, figures, min, "in process, canned replies, minimum of the rounds")
        return 0
    cores = sorted(os.sched_getaffinity(0))
    port = free_port()
    stub = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "fake_upstream.py"), str(port)],
        preexec_fn=(lambda: os.sched_setaffinity(0, {cores[-1]})) if len(cores) > 1 else None,
    )
    try:
        if len(cores) > 1:
            os.sched_setaffinity(0, {cores[0]})
        asyncio.run(wait_listening(port))
        figures = asyncio.run(run(args, port))
    finally:
        stub.terminate()
        stub.wait(10)
    report(args, figures, statistics.median, "stub upstream over loopback, median of the rounds")
    return 0


def report(
    args: argparse.Namespace,
    figures: dict[str, list[float]],
    pick: Callable[[list[float]], float],
    how: str,
) -> None:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"upstream pool CPU per call ({how}; {args.calls} calls x {args.rounds}; load {load})")
    for name, values in figures.items():
        spread = " ".join(f"{v * 1e3:.3f}" for v in values)
        print(f"  {name:18} {pick(values) * 1e3:.3f} ms  (rounds: {spread})")


if __name__ == "__main__":
    sys.exit(main())
