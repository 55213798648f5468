"""The ``router-r1`` command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from router_model.conformance import load_cases, run_conformance
from router_model.data.cli import data_app
from router_model.eval.cli import eval_app
from router_model.registry import Registry, RegistryError
from router_model.training.cli import train
from server.auth.cli import keys_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Router-R1 routing proxy.")
registry_app = typer.Typer(no_args_is_help=True, help="Inspect and validate the model registry.")
app.add_typer(registry_app, name="registry")
app.add_typer(keys_app, name="keys")
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")
app.command()(train)

DEFAULT_REGISTRY = "model_registry.yaml"


def default_registry_path() -> Path:
    return Path(os.environ.get("ROUTER_R1_REGISTRY", DEFAULT_REGISTRY))


@app.command()
def conformance(
    path: Annotated[Path, typer.Argument(help="A conformance file (JSON lines).")],
) -> None:
    """Score a Router-R1 conformance file against this implementation."""
    try:
        cases = load_cases(path)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {path}: {exc}", err=True)
        raise typer.Exit(2) from None
    report = run_conformance(cases)
    for mismatch in report.mismatches:
        typer.echo(f"MISMATCH {mismatch}")
    for line in report.lines():
        typer.echo(line)
    raise typer.Exit(0 if report.failed == 0 else 1)


@registry_app.command("check")
def registry_check(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Registry file (default: $ROUTER_R1_REGISTRY or ./model_registry.yaml)."
        ),
    ] = None,
) -> None:
    """Validate a registry file and list the profiles and models it defines."""
    source = path or default_registry_path()
    try:
        registry = Registry.from_file(source)
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{source}: OK, {len(registry.profiles)} profiles, {len(registry.models)} models")
    for profile in registry.profiles:
        typer.echo(
            f"profile {profile.name}: policy {profile.policy.model} ({profile.policy.engine}), "
            f"template {profile.template}, pool {', '.join(profile.pool)}"
        )
    for model in registry.models:
        endpoint = registry.endpoint(model.endpoint)
        typer.echo(
            f"model {model.name}: {model.upstream_model} at {endpoint.base_url}, "
            f"${model.pricing.input_per_1m:g}/${model.pricing.output_per_1m:g} per 1M in/out"
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (ROUTER_R1_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (ROUTER_R1_PORT).")] = None,
    registry: Annotated[
        Path | None, typer.Option(help="Registry file (ROUTER_R1_REGISTRY).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Run the gateway under uvicorn."""
    import uvicorn

    from server.settings import Settings

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if registry is not None:
        overrides["registry"] = registry
    settings = Settings(**overrides)  # type: ignore[arg-type]
    try:
        Registry.from_file(settings.registry)  # fail fast, with the one-line message
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for name, value in overrides.items():
        os.environ[f"ROUTER_R1_{name.upper()}"] = str(value)  # reaches worker processes too
    from server.metrics.exposition import reset_multiprocess_dir

    reset_multiprocess_dir()  # PROMETHEUS_MULTIPROC_DIR: drop a previous run's values
    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
    )


@app.command()
def up(
    port: Annotated[int, typer.Option(help="The proxy's port on 127.0.0.1.")] = 8080,
    registry: Annotated[
        Path | None,
        typer.Option(help="Registry file (default: the packaged local registry)."),
    ] = None,
    threads: Annotated[int, typer.Option(min=1, help="Threads per llama.cpp server.")] = 2,
    ready_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds each server may take to become ready.")
    ] = 180.0,
) -> None:
    """Run the whole stack locally: llama.cpp policy + upstream models, and the proxy.

    Needs llama.cpp and the model packages: scripts/setup_llamacpp.sh (scripts/stack.sh
    runs the setup, then this)."""
    from server.local.models import ModelNotInstalled
    from server.local.stack import StackOptions, run_stack

    options = StackOptions(
        port=port, registry=registry, n_threads=threads, ready_timeout_s=ready_timeout
    )
    try:
        status = run_stack(options, echo=typer.echo)
    except ModelNotInstalled as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(status)


def main() -> None:
    app()
