"""``router-r1 serve``: the gateway under uvicorn (the umbrella CLI registers this command)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from router_model.registry import RegistryError
from router_model.registry.checks import load_servable


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

    from server.logs import logging_config
    from server.settings import SettingsError, load_settings

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if registry is not None:
        overrides["registry"] = registry
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        load_servable(settings.registry)  # fail fast, with the one-line message
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    from server.telemetry import TelemetryConfig, TelemetryConfigError

    try:
        TelemetryConfig.from_environ(os.environ)  # an OTEL_* value it cannot honour
    except TelemetryConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
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
        log_config=logging_config(settings.log),
        log_level=settings.log.level,
        access_log=False,  # one router_r1.access line per request instead
        timeout_keep_alive=int(settings.http.keepalive_timeout_s),
        timeout_graceful_shutdown=int(settings.http.graceful_shutdown_s),
    )
