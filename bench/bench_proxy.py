"""Benchmark of the routing proxy against fast local fakes (issue 3).

Run: ``.venv/bin/python bench/bench_proxy.py [--duration S] [--concurrency N]`` (see
``--help``; bench/README.md explains the figures).

One run starts the fake upstream (``bench/fake_upstream.py``, plus a second one that paces its
stream chunks), the fake vLLM policy engine (``bench/fake_engine.py``) and the proxy
(``router-r1 serve``, one uvicorn worker) on free local ports, with a temporary registry
pointing at the fakes. The proxy is pinned to one core, this load generator (an aiohttp
client, closed loop, N concurrent workers) and the fakes to another. Each scenario warms up,
then measures requests/s, latency p50/p99 and the proxy process's CPU time per request
(utime+stime from ``/proc/<pid>/stat`` over the window):

- direct: non-streamed requests straight to the fake upstream (the floor);
- passthrough: the same requests through the proxy (``model`` = a registry model);
- direct/proxy stream: streamed, time to the first content chunk (TTFT); the stub answers at
  once, so the closed loop saturates the proxy and TTFT is mostly queueing;
- direct/proxy paced: the same against the pacing stub (``--chunk-delay-ms`` per chunk), as a
  model streams: the proxy is not saturated, so the TTFT it adds is its own (the target);
- episode: the scripted two-route Router-R1 episode (3 policy turns, 2 upstream calls, 11
  engine/upstream calls), with the proxy's own overhead per turn as it reports it
  (``router.totals.overhead_ms`` / turns), at concurrency N and 1.

If ``litellm`` is importable (or ``--litellm-python`` names an interpreter that has it), a
LiteLLM proxy is measured on the same run; otherwise the issue's reference figure is shown.
Every child process is stopped on exit, Ctrl-C and errors included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from fake_engine import FIRST_MODEL, SECOND_MODEL  # noqa: E402

PROFILE = "router-r1-bench"
PACED_MODEL = "bench-paced"
POLICY_MODEL = "bench/policy"
LITELLM_REFERENCE_RPS = 90.0  # issue 3: LiteLLM proxy, 1 worker, same kind of setup
LITELLM_REFERENCE_CPU_MS = 12.0
TARGET_RPS = 1000.0
TARGET_CPU_MS = 1.0
TARGET_TTFT_ADDED_MS = 2.0
TARGET_OVERHEAD_PER_TURN_MS = 2.0
EPISODE_TURNS = 3
START_TIMEOUT_S = 90.0
LITELLM_START_TIMEOUT_S = 240.0  # its imports alone take a minute on a busy core
REQUEST_TIMEOUT_S = 30.0
QUESTION = "What is the capital of Australia?"

REGISTRY_TEMPLATE = """\
version: 1
endpoints:
  stub: {{base_url: "http://127.0.0.1:{upstream_port}/v1", max_connections: 1000}}
  paced: {{base_url: "http://127.0.0.1:{paced_port}/v1", max_connections: 1000}}
  policy: {{base_url: "http://127.0.0.1:{engine_port}/v1"}}
models:
  - name: {first}
    description: "A fast local stub upstream (first pool model)."
    endpoint: stub
    upstream_model: stub-a
    pricing: {{input_per_1m: 0.3, output_per_1m: 0.3}}
  - name: {second}
    description: "The same stub upstream under a second name (second pool model)."
    endpoint: stub
    upstream_model: stub-b
    pricing: {{input_per_1m: 0.9, output_per_1m: 0.9}}
  - name: {paced}
    description: "A stub upstream that paces its stream chunks."
    endpoint: paced
    upstream_model: stub-paced
    pricing: {{free: true}}
profiles:
  - name: {profile}
    policy: {{endpoint: policy, model: {policy_model}, engine: vllm}}
    template: qwen
    pool: [{first}, {second}]
    limits: {{max_routes: 4, max_turn_tokens: 256, max_context_tokens: 4096}}
"""

LITELLM_CONFIG_TEMPLATE = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/stub-a
      api_base: "http://127.0.0.1:{upstream_port}/v1"
      api_key: sk-bench
litellm_settings:
  drop_params: true
general_settings:
  master_key: {master_key}
"""
LITELLM_MASTER_KEY = "sk-bench-local"


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def python_command(script: Path, *args: str) -> list[str]:
    """Run ``script`` under this interpreter, on uvloop when it is installed."""
    code = (
        "import runpy, sys\n"
        "try:\n    import uvloop\nexcept ImportError:\n    pass\nelse:\n"
        "    import asyncio; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    return [sys.executable, "-c", code, str(script), *args]


class Children:
    """The child processes of one run; :meth:`stop_all` ends each by its own pid."""

    def __init__(self) -> None:
        self._processes: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(
        self, command: list[str], *, core: int | None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        def pin() -> None:
            if core is not None:
                os.sched_setaffinity(0, {core})

        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop_all
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=pin,  # affinity set before exec, so every thread inherits it
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children
        )
        self._processes.append((process, log))
        return process

    def output_of(self, process: subprocess.Popen[bytes]) -> str:
        for candidate, log in self._processes:
            if candidate is process:
                log.seek(0)
                return log.read()[-2000:].decode("utf-8", "replace")
        return ""

    def stop_all(self) -> None:
        for process, _ in self._processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process, log in self._processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            log.close()
        self._processes.clear()


async def wait_listening(
    children: Children,
    process: subprocess.Popen[bytes],
    name: str,
    url: str,
    timeout_s: float = START_TIMEOUT_S,
) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}:\n{children.output_of(process)}"
                )
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
                    await response.read()
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on {url} within {timeout_s:g} s")


# ----------------------------------------------------------------------------- measurement


@dataclass
class Sample:
    end: float
    latency_s: float
    ttft_s: float | None = None
    overhead_per_turn_ms: float | None = None


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    window_s: float
    latencies_ms: list[float]
    ttfts_ms: list[float]
    overheads_ms: list[float]
    cpu_ms_per_request: float | None
    busy: float | None  # the measured process's CPU time / wall time

    @property
    def rps(self) -> float:
        return self.requests / self.window_s

    @staticmethod
    def quantile(values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def latency(self, q: float) -> float:
        return self.quantile(self.latencies_ms, q)

    def ttft(self, q: float) -> float:
        return self.quantile(self.ttfts_ms, q)

    def overhead(self, q: float) -> float:
        return self.quantile(self.overheads_ms, q)


Request = Callable[[aiohttp.ClientSession], Awaitable[Sample]]


async def closed_loop(
    name: str,
    session: aiohttp.ClientSession,
    request: Request,
    *,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    pid: int | None,
) -> Result:
    """``concurrency`` workers each sending ``request`` back to back; measures one window."""
    samples: list[Sample] = []
    errors: list[BaseException] = []
    stop = asyncio.Event()

    async def worker() -> None:
        while not stop.is_set():
            try:
                samples.append(await request(session))
            except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as exc:
                errors.append(exc)
                if len(errors) > 100 and not samples:
                    stop.set()
                await asyncio.sleep(0.01)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        await asyncio.sleep(warmup_s)
        errors.clear()
        t0, cpu0 = time.perf_counter(), cpu_seconds(pid) if pid else 0.0
        await asyncio.sleep(duration_s)
        t1, cpu1 = time.perf_counter(), cpu_seconds(pid) if pid else 0.0
        errors_in_window = len(errors)
        stop.set()
        await asyncio.wait(workers, timeout=REQUEST_TIMEOUT_S)  # the rest are cancelled
    finally:
        for task in workers:
            task.cancel()
    window = [s for s in samples if t0 <= s.end <= t1 and s.end - s.latency_s >= t0]
    counted = [s for s in samples if t0 <= s.end <= t1]
    if not counted:
        detail = f" (first error: {errors[0]!r})" if errors else ""
        print(f"  {name}: no request completed in the window{detail}", flush=True)
    wall = t1 - t0
    return Result(
        name=name,
        requests=len(counted),
        errors=errors_in_window,
        window_s=wall,
        latencies_ms=[s.latency_s * 1000 for s in window],
        ttfts_ms=[s.ttft_s * 1000 for s in window if s.ttft_s is not None],
        overheads_ms=[s.overhead_per_turn_ms for s in window if s.overhead_per_turn_ms is not None],
        cpu_ms_per_request=(cpu1 - cpu0) * 1000 / len(counted) if pid and counted else None,
        busy=(cpu1 - cpu0) / wall if pid else None,
    )


def chat_body(model: str, *, stream: bool = False) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 32,
    }
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


_HEADERS = {"content-type": "application/json"}


def non_stream(url: str, model: str, api_key: str | None = None) -> Request:
    body = chat_body(model)
    headers = {**_HEADERS, "authorization": f"Bearer {api_key}"} if api_key else _HEADERS

    async def call(session: aiohttp.ClientSession) -> Sample:
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            payload = await response.read()
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}: {payload[:200]!r}")
        end = time.perf_counter()
        return Sample(end=end, latency_s=end - started)

    return call


def stream(url: str, model: str) -> Request:
    body = chat_body(model, stream=True)

    async def call(session: aiohttp.ClientSession) -> Sample:
        started = time.perf_counter()
        first: float | None = None
        async with session.post(url, data=body, headers=_HEADERS) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}: {(await response.read())[:200]!r}")
            async for line in response.content:
                if first is None and b'"content":"' in line and b'"content":""' not in line:
                    first = time.perf_counter()
        end = time.perf_counter()
        if first is None:
            raise ValueError("the stream had no content chunk")
        return Sample(end=end, latency_s=end - started, ttft_s=first - started)

    return call


def check_episode(payload: dict[str, Any]) -> None:
    """The scripted episode ran as scripted (two routes, both models, an answer)."""
    router = payload["router"]
    totals = router["totals"]
    problems = []
    if router["outcome"] != "answer" or len(router["steps"]) != EPISODE_TURNS:
        problems.append(f"outcome {router['outcome']} after {len(router['steps'])} turns")
    if totals["models"] != [FIRST_MODEL, SECOND_MODEL]:
        problems.append(f"models {totals['models']}")
    if "Canberra" not in payload["choices"][0]["message"]["content"]:
        problems.append(f"answer {payload['choices'][0]['message']['content']!r}")
    if problems:
        raise ValueError("the episode did not run as scripted: " + "; ".join(problems))


def episode(url: str) -> Request:
    body = chat_body(PROFILE)

    async def call(session: aiohttp.ClientSession) -> Sample:
        started = time.perf_counter()
        async with session.post(url, data=body, headers=_HEADERS) as response:
            raw = await response.read()
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}: {raw[:300]!r}")
        end = time.perf_counter()
        payload = orjson.loads(raw)
        check_episode(payload)
        turns = len(payload["router"]["steps"])
        overhead = payload["router"]["totals"]["overhead_ms"] / turns
        return Sample(end=end, latency_s=end - started, overhead_per_turn_ms=overhead)

    return call


# ----------------------------------------------------------------------------- the run


@dataclass
class Setup:
    upstream_url: str
    paced_url: str
    proxy_url: str
    proxy_pid: int
    litellm_url: str | None
    litellm_pid: int | None


def idle_ticks() -> dict[int, int]:
    """Idle + iowait clock ticks of each core so far (``/proc/stat``)."""
    ticks: dict[int, int] = {}
    with open("/proc/stat") as stat:
        for line in stat:
            name, *fields = line.split()
            if name.startswith("cpu") and name != "cpu":
                ticks[int(name[3:])] = int(fields[3]) + int(fields[4])
    return ticks


def pinned_processes() -> dict[int, int]:
    """How many user processes are pinned to each core alone (a CPU inference engine pins its
    workers: whatever shares their core is starved whenever they spin)."""
    pinned: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes():
                continue  # a kernel thread: every core has its own
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Cpus_allowed_list:"):
                cores = line.split()[1]
                if cores.isdigit():
                    pinned[int(cores)] = pinned.get(int(cores), 0) + 1
    return pinned


def pinning(proxy_core: int | None, load_core: int | None) -> tuple[int | None, int | None]:
    """(proxy core, load core): the given ones, else the allowed core with the fewest other
    processes pinned to it, then the idlest over half a second, for the proxy, and the next
    for the load; no pinning with only one core."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    if proxy_core is not None and load_core is not None:
        return proxy_core, load_core
    pinned = pinned_processes()
    before = idle_ticks()
    time.sleep(0.5)
    after = idle_ticks()
    idlest = sorted(
        allowed,
        key=lambda core: (pinned.get(core, 0), before.get(core, 0) - after.get(core, 0)),
    )
    proxy = proxy_core if proxy_core is not None else idlest[0]
    load = load_core if load_core is not None else next(c for c in idlest if c != proxy)
    return proxy, load


def litellm_interpreter(given: str | None) -> str | None:
    if given:
        return given
    return sys.executable if importlib.util.find_spec("litellm") is not None else None


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


async def start_litellm(
    children: Children, workdir: Path, python: str, upstream_port: int, core: int | None
) -> tuple[str, int]:
    """A LiteLLM proxy (one worker) relaying :data:`FIRST_MODEL` to the fast stub."""
    port = free_port()
    config = workdir / "litellm.yaml"
    config.write_text(
        LITELLM_CONFIG_TEMPLATE.format(
            model=FIRST_MODEL, upstream_port=upstream_port, master_key=LITELLM_MASTER_KEY
        )
    )
    command = [python, "-m", "litellm.proxy.proxy_cli", "--config", str(config)]
    command += ["--port", str(port), "--host", "127.0.0.1", "--num_workers", "1"]
    litellm = children.start(
        command,
        core=core,
        env={
            "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY": "False",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch at start (no network needed)
        },
    )
    base = f"http://127.0.0.1:{port}"
    await wait_listening(
        children, litellm, "litellm", base + "/health/liveliness", LITELLM_START_TIMEOUT_S
    )
    return base + "/v1/chat/completions", litellm.pid


async def start_all(
    children: Children, workdir: Path, args: argparse.Namespace
) -> tuple[Setup, str]:
    proxy_core, load_core = pinning(args.proxy_core, args.load_core)
    if load_core is not None:
        os.sched_setaffinity(0, {load_core})
    ports = {name: free_port() for name in ("upstream", "paced", "engine", "proxy")}
    fakes = {
        "fake upstream": (BENCH_DIR / "fake_upstream.py", [ports["upstream"]], "/"),
        "paced upstream": (
            BENCH_DIR / "fake_upstream.py",
            [ports["paced"], args.chunk_delay_ms],
            "/",
        ),
        "fake engine": (BENCH_DIR / "fake_engine.py", [ports["engine"]], "/health"),
    }
    started = [
        (name, children.start(python_command(script, *map(str, argv)), core=load_core), path, argv)
        for name, (script, argv, path) in fakes.items()
    ]
    registry = workdir / "registry.yaml"
    registry.write_text(
        REGISTRY_TEMPLATE.format(
            upstream_port=ports["upstream"],
            paced_port=ports["paced"],
            engine_port=ports["engine"],
            first=FIRST_MODEL,
            second=SECOND_MODEL,
            paced=PACED_MODEL,
            profile=PROFILE,
            policy_model=POLICY_MODEL,
        )
    )
    script = Path(sys.executable).parent / "router-r1"
    serve = (
        [str(script), "serve"]
        if script.exists()
        else [sys.executable, "-c", "from router_r1.cli import main; main()", "serve"]
    )
    proxy = children.start(
        shlex.split(args.proxy_command or "") or serve,
        core=proxy_core,
        env={
            "ROUTER_R1_REGISTRY": str(registry),
            "ROUTER_R1_PORT": str(ports["proxy"]),
            "ROUTER_R1_HOST": "127.0.0.1",
            "ROUTER_R1_LOG_LEVEL": "warning",
        },
    )
    for name, process, path, argv in started:
        await wait_listening(children, process, name, f"http://127.0.0.1:{argv[0]}{path}")
    proxy_base = f"http://127.0.0.1:{ports['proxy']}"
    await wait_listening(children, proxy, "proxy", proxy_base + "/health")
    litellm_url, litellm_pid = None, None
    python = litellm_interpreter(args.litellm_python)
    if python is not None:
        try:
            litellm_url, litellm_pid = await start_litellm(
                children, workdir, python, ports["upstream"], proxy_core
            )
        except RuntimeError as exc:  # optional: the run goes on without it
            print(f"LiteLLM not measured: {str(exc)[:1500]}", flush=True)
    print(f"proxy pid {proxy.pid} at {proxy_base}", flush=True)
    where = (
        f"proxy on core {proxy_core}, load generator and fakes on core {load_core}"
        if proxy_core is not None
        else "one core: nothing pinned"
    )
    setup = Setup(
        upstream_url=f"http://127.0.0.1:{ports['upstream']}/v1/chat/completions",
        paced_url=f"http://127.0.0.1:{ports['paced']}/v1/chat/completions",
        proxy_url=proxy_base + "/v1/chat/completions",
        proxy_pid=proxy.pid,
        litellm_url=litellm_url,
        litellm_pid=litellm_pid,
    )
    return setup, where


async def run_scenarios(setup: Setup, args: argparse.Namespace) -> dict[str, Result]:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    results: dict[str, Result] = {}
    n, proxy = args.concurrency, setup.proxy_pid
    plan: list[tuple[str, Request, int | None, int]] = [
        ("direct", non_stream(setup.upstream_url, "stub"), None, n),
        ("passthrough", non_stream(setup.proxy_url, FIRST_MODEL), proxy, n),
        ("direct stream", stream(setup.upstream_url, "stub"), None, n),
        ("proxy stream", stream(setup.proxy_url, FIRST_MODEL), proxy, n),
        ("direct paced", stream(setup.paced_url, "stub"), None, n),
        ("proxy paced", stream(setup.proxy_url, PACED_MODEL), proxy, n),
        ("episode", episode(setup.proxy_url), proxy, n),
        ("episode c=1", episode(setup.proxy_url), proxy, 1),
    ]
    if setup.litellm_url is not None:
        litellm = non_stream(setup.litellm_url, FIRST_MODEL, LITELLM_MASTER_KEY)
        plan.append(("litellm", litellm, setup.litellm_pid, n))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for name, request, pid, concurrency in plan:
            if args.only and name not in args.only:
                continue
            print(f"  measuring {name} (concurrency {concurrency}) ...", flush=True)
            results[name] = await closed_loop(
                name,
                session,
                request,
                concurrency=concurrency,
                warmup_s=args.warmup,
                duration_s=args.duration,
                pid=pid,
            )
    return results


# ----------------------------------------------------------------------------- report


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None or value != value else format(value, spec)


def report(results: dict[str, Result], args: argparse.Namespace, where: str) -> bool:
    print()
    print(f"concurrency {args.concurrency}, {args.duration:g} s per scenario; {where}")
    header = (
        f"{'scenario':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'TTFT p50':>9} "
        f"{'TTFT p99':>9} {'CPU ms/req':>10} {'busy':>5} {'1 core':>7} {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results.values():
        print(
            f"{r.name:<14} {r.rps:>8.0f} {_fmt(r.latency(0.5)):>8} {_fmt(r.latency(0.99)):>8} "
            f"{_fmt(r.ttft(0.5) if r.ttfts_ms else None):>9} "
            f"{_fmt(r.ttft(0.99) if r.ttfts_ms else None):>9} "
            f"{_fmt(r.cpu_ms_per_request, '.3f'):>10} "
            f"{_fmt(r.busy * 100 if r.busy is not None else None, '.0f'):>4}% "
            f"{_fmt(1000 / r.cpu_ms_per_request if r.cpu_ms_per_request else None, '.0f'):>7} "
            f"{r.errors:>6}"
        )
    print(
        "CPU ms/req and busy (CPU time / wall time): the proxy process ('-': direct rows);\n"
        "1 core: 1000 / CPU ms, the req/s the proxy would serve with a whole core to itself.\n"
        f"Load average now (other work on this machine skews req/s and latency): "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print()
    verdicts: list[tuple[str, bool]] = []

    def verdict(label: str, ok: bool) -> None:
        verdicts.append((label, ok))

    direct, passthrough = results.get("direct"), results.get("passthrough")
    litellm = results.get("litellm")
    if direct and passthrough:
        added = passthrough.latency(0.5) - direct.latency(0.5)
        print(
            f"passthrough added latency p50: {added:.2f} ms "
            f"(p99 {passthrough.latency(0.99) - direct.latency(0.99):.2f} ms); "
            f"req/s vs direct: {ratio(passthrough.rps, direct.rps):.2f}x"
        )
    if passthrough:
        cpu = passthrough.cpu_ms_per_request or float("nan")
        if litellm is not None and litellm.requests:
            litellm_rps = litellm.rps
            litellm_cpu = litellm.cpu_ms_per_request or float("nan")
            source = "measured on this run"
        else:
            litellm_rps, litellm_cpu = LITELLM_REFERENCE_RPS, LITELLM_REFERENCE_CPU_MS
            source = (
                "the issue's reference figure; LiteLLM completed no request on this run"
                if litellm is not None
                else "the issue's reference figure; LiteLLM not installed, not measured"
            )
        print(
            f"passthrough vs LiteLLM ({litellm_rps:.0f} req/s, {litellm_cpu:.1f} CPU ms/req, "
            f"{source}): {ratio(passthrough.rps, litellm_rps):.1f}x req/s, "
            f"{ratio(litellm_cpu, cpu):.1f}x less CPU per request"
        )
        verdict(
            f"passthrough >= {TARGET_RPS:.0f} req/s at concurrency {args.concurrency} "
            f"({passthrough.rps:.0f})",
            passthrough.rps >= TARGET_RPS,
        )
        verdict(
            f"passthrough <= {TARGET_CPU_MS:g} CPU ms/request ({cpu:.3f})", cpu <= TARGET_CPU_MS
        )
        verdict(
            f"passthrough >= 10x LiteLLM req/s ({ratio(passthrough.rps, litellm_rps):.1f}x)",
            passthrough.rps >= 10 * litellm_rps,
        )
    for direct_name, proxy_name, judged in (
        ("direct stream", "proxy stream", False),
        ("direct paced", "proxy paced", True),
    ):
        direct_stream, proxy_stream = results.get(direct_name), results.get(proxy_name)
        if not (direct_stream and proxy_stream):
            continue
        added = proxy_stream.ttft(0.5) - direct_stream.ttft(0.5)
        kind = (
            f"paced stub ({args.chunk_delay_ms:g} ms per chunk)"
            if judged
            else "instant stub, proxy saturated"
        )
        print(
            f"stream TTFT added p50, {kind}: {added:.2f} ms "
            f"(p99 {proxy_stream.ttft(0.99) - direct_stream.ttft(0.99):.2f} ms); "
            f"proxy CPU {_fmt(proxy_stream.cpu_ms_per_request, '.3f')} ms/stream"
        )
        if judged:
            verdict(
                f"stream TTFT added <= {TARGET_TTFT_ADDED_MS:g} ms p50 at concurrency "
                f"{args.concurrency}, {kind} ({added:.2f})",
                added <= TARGET_TTFT_ADDED_MS,
            )
    for name in ("episode", "episode c=1"):
        r = results.get(name)
        if r is None:
            continue
        cpu = r.cpu_ms_per_request or float("nan")
        print(
            f"{name}: overhead per turn p50 {r.overhead(0.5):.2f} ms, p99 {r.overhead(0.99):.2f}"
            f" ms (router.totals.overhead_ms / {EPISODE_TURNS}); proxy CPU {cpu:.2f} ms per "
            f"episode = {cpu / EPISODE_TURNS:.2f} ms per turn (11 engine/upstream calls)"
        )
        verdict(
            f"{name}: orchestration overhead <= {TARGET_OVERHEAD_PER_TURN_MS:g} ms/turn p50 "
            f"({r.overhead(0.5):.2f})",
            r.overhead(0.5) <= TARGET_OVERHEAD_PER_TURN_MS,
        )
    print()
    for label, ok in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    return all(ok for _, ok in verdicts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds measured per scenario"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per scenario")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop workers")
    parser.add_argument(
        "--proxy-core", type=int, help="core for the proxy (default: see pinning())"
    )
    parser.add_argument("--load-core", type=int, help="core for load and fakes (default: next)")
    parser.add_argument(
        "--chunk-delay-ms",
        type=float,
        default=10.0,
        help="pause before each chunk of the paced stub's streams (the TTFT target's scenario)",
    )
    parser.add_argument(
        "--litellm-python", help="an interpreter with litellm installed (default: this one's)"
    )
    parser.add_argument(
        "--proxy-command",
        help="start the proxy with this command instead of 'router-r1 serve' (for profiling); "
        "it gets the ROUTER_R1_* environment",
    )
    parser.add_argument(
        "--only", nargs="*", help="scenarios to run (direct, passthrough, 'proxy stream', ...)"
    )
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace, children: Children) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as workdir:
        try:
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"starting the fakes and the proxy (load average {load}) ...", flush=True)
            setup, where = await start_all(children, Path(workdir), args)
            results = await run_scenarios(setup, args)
        finally:
            children.stop_all()
    return 0 if report(results, args, where) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    children = Children()
    with stop_on_sigterm():
        try:
            return runner(main_async(args, children))
        except KeyboardInterrupt:
            print("interrupted: children stopped", file=sys.stderr)
            return 130
        finally:
            children.stop_all()


if __name__ == "__main__":
    sys.exit(main())
