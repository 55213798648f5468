"""``router-r1 registry``: validate a registry file and list what it defines."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from router_model.registry.checks import load_servable
from router_model.registry.loader import RegistryError
from router_model.registry.pricing import Pricing

registry_app = typer.Typer(no_args_is_help=True, help="Inspect and validate the model registry.")

DEFAULT_REGISTRY = "model_registry.yaml"


def default_registry_path() -> Path:
    return Path(os.environ.get("ROUTER_R1_REGISTRY", DEFAULT_REGISTRY))


@registry_app.command("check")
def registry_check(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Registry file (default: $ROUTER_R1_REGISTRY or ./model_registry.yaml)."
        ),
    ] = None,
) -> None:
    """Validate a registry file and list the profiles and models it defines; exit 1 with a
    one-line reason if the gateway would refuse it (invalid, or no profile or no model
    without ``allow_empty: true``)."""
    source = path or default_registry_path()
    try:
        registry = load_servable(source)
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
        served = "; ".join(
            f"{d.upstream_model} at {registry.endpoint(d.endpoint).base_url}"
            + (f" (weight {d.weight:g})" if len(model.deployments) > 1 else "")
            + (f", {_price(d.pricing)}" if d.pricing is not None else "")
            for d in model.deployments
        )
        fallbacks = f", fallbacks {', '.join(model.fallbacks)}" if model.fallbacks else ""
        typer.echo(f"model {model.name}: {served}, {_price(model.pricing)}{fallbacks}")


def _price(pricing: Pricing) -> str:
    if pricing.free:
        return "free"
    cached = (
        f" (cached input ${pricing.cached_input_per_1m:g})"
        if pricing.cached_input_per_1m is not None
        else ""
    )
    return f"${pricing.input_per_1m:g}/${pricing.output_per_1m:g} per 1M in/out{cached}"
