"""``router-r1 up``: the whole stack on one machine, on loopback.

Starts three llama.cpp servers (the SmolLM2-135M-Instruct policy, and SmolLM2-135M-Instruct
and Gemma-3-270M as the upstream pool, each on a free port), then the proxy
(``router-r1 serve``, in-memory store) with the packaged local registry
(``model_registry.local.yaml``), prints how to call it, and runs until Ctrl-C or until a
child exits; then it stops every child (proxy first) and returns.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import FrameType

from local_stack.models import gemma3_gguf, models_cache_dir, smollm2_gguf
from local_stack.processes import (
    LOOPBACK,
    LlamaServerSpec,
    ManagedProcess,
    ServerStartError,
    free_port,
    llama_server,
)

__all__ = [
    "LOCAL_PROFILE",
    "StackOptions",
    "local_registry_path",
    "local_server_specs",
    "run_stack",
    "usage_text",
]

LOCAL_PROFILE = "router-r1-local"
POLICY_ALIAS = "smollm2-135m-policy"
PORT_ENV = {
    "policy": "ROUTER_R1_LOCAL_POLICY_PORT",
    "smollm2": "ROUTER_R1_LOCAL_SMOLLM2_PORT",
    "gemma3": "ROUTER_R1_LOCAL_GEMMA3_PORT",
}

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
    ready_timeout_s: float = 180.0
    log_dir: Path = field(default_factory=lambda: models_cache_dir().parent / "logs")


def local_server_specs(n_threads: int = 2) -> list[LlamaServerSpec]:
    """The three llama.cpp servers, each on a free loopback port."""
    smollm2, gemma3 = smollm2_gguf(), gemma3_gguf()
    return [
        # The RAM state cache lets interleaved episodes resume from their own KV state
        # (bench/bench_reprefill.py: without it each switch re-prefills the context).
        LlamaServerSpec(
            "policy", smollm2, POLICY_ALIAS, free_port(), n_threads=n_threads, prompt_cache=True
        ),
        LlamaServerSpec(
            "smollm2", smollm2, "smollm2-135m-instruct", free_port(), n_threads=n_threads
        ),
        # A base model without a chat template: llama-cpp-python's "gemma" chat format
        # gives its chat endpoint the Gemma turn markers.
        LlamaServerSpec(
            "gemma3",
            gemma3,
            "gemma-3-270m",
            free_port(),
            n_threads=n_threads,
            chat_format="gemma",
        ),
    ]


def stack_environment(
    specs: list[LlamaServerSpec], options: StackOptions, base: Mapping[str, str]
) -> dict[str, str]:
    """The proxy's environment: the registry and the ports it refers to."""
    env = dict(base)
    for spec in specs:
        env[PORT_ENV[spec.name]] = str(spec.port)
    env["ROUTER_R1_REGISTRY"] = str(options.registry or local_registry_path())
    env["ROUTER_R1_HOST"] = options.host
    env["ROUTER_R1_PORT"] = str(options.port)
    env.pop("ROUTER_R1_REDIS_URL", None)  # the in-memory store
    # llama.cpp serves one request at a time: a routed call may wait behind policy turns.
    env.setdefault("ROUTER_R1_UPSTREAM_TOTAL_TIMEOUT_S", "300")
    env.setdefault("ROUTER_R1_ENGINE_READ_TIMEOUT_S", "300")
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


def run_stack(options: StackOptions, echo: Echo = print) -> int:
    """Start the stack, serve until interrupted, stop everything; the exit status."""
    specs = local_server_specs(options.n_threads)
    llama = [llama_server(spec, options.log_dir) for spec in specs]
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
            echo(f"==> starting llama.cpp servers (logs: {options.log_dir})")
            _start_all(llama, options.ready_timeout_s, echo, stop)
            echo("==> starting the proxy")
            _start_all([proxy], options.ready_timeout_s, echo, stop)
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
