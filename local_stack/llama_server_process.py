"""Command lines for llama.cpp's own ``llama-server``, and a managed child process for one.

:func:`llama_server_args` is the one place the recommended flags live (see
:mod:`server.engines.llama_server` for what each does in the pinned version):

- ``--parallel N`` slots with continuous batching (on by default), ``--ctx-size`` = N x the
  context of one slot (without ``--kv-unified`` each slot gets ``ctx-size / N``);
- the RAM prompt cache bounded by ``--cache-ram MiB`` (the default is 8192 MiB);
- ``--metrics`` (Prometheus ``/metrics``), ``--slots`` (on by default);
- ``--offline`` and ``--no-webui``: nothing is downloaded, no web UI is served;
- ``--jinja`` (on by default, named for clarity): the GGUF's Jinja chat template, needed
  by ``/apply-template`` and ``/v1/chat/completions``;
- threads: ``--threads``/``--threads-batch``; the child's environment makes OpenMP
  threads sleep while they wait (:func:`local_stack.processes.llama_server_environment`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from local_stack.llama_server_binary import llama_server_binary
from local_stack.processes import LOOPBACK, ManagedProcess, llama_server_environment

__all__ = ["LlamaServerOptions", "llama_server_args", "managed_llama_server"]


@dataclass(frozen=True)
class LlamaServerOptions:
    """One llama-server to start: the model, where it listens, slots, memory, threads."""

    name: str
    model_path: Path
    port: int
    alias: str = "model"
    parallel: int = 2
    ctx_per_slot: int = 4096
    threads: int = 2
    cache_ram_mib: int = 256
    metrics: bool = True
    host: str = LOOPBACK
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.parallel < 1 or self.ctx_per_slot < 1 or self.threads < 1:
            raise ValueError("parallel, ctx_per_slot and threads must be positive")
        if self.cache_ram_mib < 0:
            raise ValueError("cache_ram_mib must be >= 0 (0 turns the RAM cache off)")

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base (``/v1``) a registry endpoint names."""
        return self.root_url + "/v1"

    @property
    def ready_url(self) -> str:
        return self.root_url + "/health"


def llama_server_args(options: LlamaServerOptions, binary: Path) -> list[str]:
    """The full command line for ``options``."""
    args: list[str] = [
        str(binary),
        "--model",
        str(options.model_path),
        "--alias",
        options.alias,
        "--host",
        options.host,
        "--port",
        str(options.port),
        "--threads",
        str(options.threads),
        "--threads-batch",
        str(options.threads),
        "--parallel",
        str(options.parallel),
        "--ctx-size",
        str(options.parallel * options.ctx_per_slot),
        "--cache-ram",
        str(options.cache_ram_mib),
        "--jinja",
        "--offline",
        "--no-webui",
    ]
    if options.metrics:
        args.append("--metrics")
    return [*args, *options.extra_args]


def managed_llama_server(
    options: LlamaServerOptions, log_dir: Path, binary: Path | None = None
) -> ManagedProcess:
    """A :class:`ManagedProcess` for ``options`` (not started); its log is
    ``log_dir/<name>.log``. The binary defaults to the one the setup script built."""
    command: Sequence[str] = llama_server_args(options, binary or llama_server_binary())
    return ManagedProcess(
        name=f"llama-server {options.name!r}",
        command=command,
        ready_url=options.ready_url,
        log_path=log_dir / f"{options.name}.log",
        env=llama_server_environment(),
    )
