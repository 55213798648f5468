"""``router-r1 up``: the whole stack on one machine, on loopback.

Starts two llama.cpp ``llama-server`` processes, each on a free port with parallel slots and
bounded memory (KV cache = slots x context per slot, RAM prompt cache capped by
``--cache-ram``):

- ``qwen``: Qwen2.5-Coder-1.5B-Instruct, the router policy of the default profile (native
  ``/completion`` turns) and the pool's strong model (``/v1/chat/completions``);
- ``smollm2``: SmolLM2-135M-Instruct, the pool's cheap model and the plumbing profile's
  policy.

Then the proxy (``router-r1 serve``, in-memory store) with the packaged local registry
(``model_registry.local.yaml``); prints the time to ready and how to call it, and runs until
Ctrl-C or until a child exits; then it stops every child (proxy first) and returns.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import FrameType

from local_stack.llama_server_process import LlamaServerOptions, managed_llama_server
from local_stack.models import models_cache_dir, smollm2_gguf
from local_stack.processes import LOOPBACK, ManagedProcess, ServerStartError, free_port
from local_stack.qwen25_model import qwen25_gguf

__all__ = [
    "LOCAL_PROFILE",
    "PLUMBING_PROFILE",
    "StackOptions",
    "local_registry_path",
    "local_server_specs",
    "run_stack",
    "usage_text",
]

LOCAL_PROFILE = "router-r1-local"  # the Qwen2.5 policy
PLUMBING_PROFILE = "router-r1-local-smollm2"  # the fast SmolLM2 policy (tests, quick checks)
PORT_ENV = {"qwen": "ROUTER_R1_LOCAL_QWEN_PORT", "smollm2": "ROUTER_R1_LOCAL_SMOLLM2_PORT"}
# The aliases the registry's upstream_model fields name (llama-server reports them; with one
# model per server it answers whatever ``model`` a request names).
ALIASES = {"qwen": "qwen2.5-coder-1.5b-instruct", "smollm2": "smollm2-135m-instruct"}

Echo = Callable[[str], None]


def local_registry_path() -> Path:
    """The packaged registry of the local stack."""
    return Path(str(resources.files("local_stack").joinpath("model_registry.local.yaml")))


@dataclass(frozen=True)
class StackOptions:
    host: str = LOOPBACK
    port: int = 8080
    registry: Path | None = None
    n_threads: int = 2
    parallel: int = 4
    ready_timeout_s: float = 180.0
    log_dir: Path = field(default_factory=lambda: models_cache_dir().parent / "logs")


def local_server_specs(n_threads: int = 2, parallel: int = 4) -> list[LlamaServerOptions]:
    """The two llama-servers, each on a free loopback port.

    Memory is bounded by these numbers (bench/bench_local_stack.py measures the RSS): the KV
    cache holds ``parallel x ctx_per_slot`` tokens (Qwen2.5-1.5B: 28 KiB a token, so 4 x 4096
    is 448 MiB; SmolLM2-135M: 22.5 KiB a token), and ``--cache-ram`` caps the RAM prompt cache
    that keeps slot states a new task would overwrite (llama.cpp's default is 8 GiB). A slot's
    context (4096) holds an episode: the profiles cap the policy's context at 3072 tokens plus
    a 512-token turn.
    """
    return [
        LlamaServerOptions(
            "qwen",
            qwen25_gguf(),
            free_port(),
            alias=ALIASES["qwen"],
            parallel=parallel,
            ctx_per_slot=4096,
            threads=n_threads,
            cache_ram_mib=512,
        ),
        LlamaServerOptions(
            "smollm2",
            smollm2_gguf(),
            free_port(),
            alias=ALIASES["smollm2"],
            parallel=parallel,
            ctx_per_slot=4096,
            threads=n_threads,
            cache_ram_mib=256,
        ),
    ]


def stack_environment(
    specs: list[LlamaServerOptions], options: StackOptions, base: Mapping[str, str]
) -> dict[str, str]:
    """The proxy's environment: the registry and the ports it refers to."""
    env = dict(base)
    for spec in specs:
        env[PORT_ENV[spec.name]] = str(spec.port)
    env["ROUTER_R1_REGISTRY"] = str(options.registry or local_registry_path())
    env["ROUTER_R1_HOST"] = options.host
    env["ROUTER_R1_PORT"] = str(options.port)
    env.pop("ROUTER_R1_REDIS_URL", None)  # the in-memory store
    # A routed call may wait for a slot behind policy turns (CPU decoding is slow).
    env.setdefault("ROUTER_R1_UPSTREAM_TOTAL_TIMEOUT_S", "300")
    env.setdefault("ROUTER_R1_ENGINE_READ_TIMEOUT_S", "300")
    # The pool's models are llama-servers too, whose HTTP library closes a connection idle
    # for 5 s: reuse one for less (see ROUTER_R1_ENGINE_KEEPALIVE_EXPIRY_S).
    env.setdefault("ROUTER_R1_UPSTREAM_KEEPALIVE_EXPIRY_S", "4")
    env.setdefault("ROUTER_R1_LOG_LEVEL", "warning")
    return env


def usage_text(base_url: str, profile: str = LOCAL_PROFILE) -> str:
    """What to paste to talk to the stack."""
    return f"""
Router-R1 local stack is up: {base_url}

Python (pip install openai):

    from openai import OpenAI

    client = OpenAI(base_url="{base_url}", api_key="local")
    reply = client.chat.completions.create(
        model="{profile}",
        messages=[{{"role": "user", "content": "What is the capital of France?"}}],
    )
    print(reply.choices[0].message.content)
    print(reply.model_extra["router"])  # the routes taken, tokens and cost

curl:

    curl -s {base_url}/chat/completions -H 'Content-Type: application/json' \\
      -d '{{"model": "{profile}",
           "messages": [{{"role": "user", "content": "What is the capital of France?"}}]}}'

Press Ctrl-C to stop everything.
"""


@contextmanager
def _interrupts(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` instead of raising, for the duration."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _start_all(
    children: list[ManagedProcess], timeout_s: float, echo: Echo, stop: threading.Event
) -> None:
    for child in children:
        child.start()
    for child in children:
        took = child.wait_ready(timeout_s, cancelled=stop.is_set)
        echo(f"    {child.name} ready in {took:.1f} s")


def _describe(spec: LlamaServerOptions) -> str:
    return (
        f"{spec.name} ({spec.model_path.name}): {spec.parallel} slots x {spec.ctx_per_slot} "
        f"tokens, prompt cache <= {spec.cache_ram_mib} MiB, {spec.base_url}"
    )


def run_stack(options: StackOptions, echo: Echo = print) -> int:
    """Start the stack, serve until interrupted, stop everything; the exit status."""
    started = time.monotonic()
    specs = local_server_specs(options.n_threads, options.parallel)
    llama = [managed_llama_server(spec, options.log_dir) for spec in specs]
    proxy = ManagedProcess(
        name="proxy (router-r1 serve)",
        command=[sys.executable, "-c", "from router_r1.cli import main; main()", "serve"],
        ready_url=f"http://{options.host}:{options.port}/health",
        log_path=options.log_dir / "proxy.log",
        env=stack_environment(specs, options, os.environ),
    )
    stop = threading.Event()
    status = 0
    with _interrupts(stop):
        try:
            echo(f"==> starting llama-server processes (logs: {options.log_dir})")
            for spec in specs:
                echo(f"    {_describe(spec)}")
            _start_all(llama, options.ready_timeout_s, echo, stop)
            echo("==> starting the proxy")
            _start_all([proxy], options.ready_timeout_s, echo, stop)
            echo(f"==> ready in {time.monotonic() - started:.1f} s")
            echo(usage_text(f"http://{options.host}:{options.port}/v1"))
            while not stop.wait(0.5):
                dead = next((c for c in (proxy, *llama) if not c.running()), None)
                if dead is not None:
                    echo(f"error: {dead.name} exited; last lines:\n{dead.log_tail()}")
                    status = 1
                    break
        except ServerStartError as exc:
            echo(f"error: {exc}")
            status = 1
        finally:
            echo("==> stopping")
            for child in (proxy, *llama):
                child.stop()
    return status
