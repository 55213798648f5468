"""``router-r1 up``: the command that runs the local stack (see :mod:`local_stack.stack`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def up(
    port: Annotated[int, typer.Option(help="The proxy's port on 127.0.0.1.")] = 8080,
    registry: Annotated[
        Path | None,
        typer.Option(help="Registry file (default: the packaged local registry)."),
    ] = None,
    threads: Annotated[int, typer.Option(min=1, help="Threads per llama-server.")] = 2,
    parallel: Annotated[
        int, typer.Option(min=1, help="Slots per llama-server (episodes served at once).")
    ] = 4,
    ready_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds each server may take to become ready.")
    ] = 180.0,
) -> None:
    """Run the whole stack locally: two llama-servers (Qwen2.5 policy + strong model,
    SmolLM2 cheap model) and the proxy.

    Needs the llama-server binary and the models: scripts/setup_llama_server.sh,
    scripts/setup_qwen25.sh, scripts/setup_smollm2.sh (scripts/stack.sh runs the whole
    setup, then this)."""
    from local_stack.llama_server_binary import LlamaServerNotBuilt
    from local_stack.models import ModelNotInstalled
    from local_stack.stack import StackOptions, run_stack

    options = StackOptions(
        port=port,
        registry=registry,
        n_threads=threads,
        parallel=parallel,
        ready_timeout_s=ready_timeout,
    )
    try:
        status = run_stack(options, echo=typer.echo)
    except (ModelNotInstalled, LlamaServerNotBuilt) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(status)
