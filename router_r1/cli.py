"""``router-r1``: the umbrella command line. Each package contributes its own commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from local_stack.cli import up
from router_model.conformance import load_cases, run_conformance
from router_model.data.cli import data_app
from router_model.eval.cli import eval_app
from router_model.registry.cli import registry_app
from router_model.training.cli import train_command
from router_r1.upstreams import UPSTREAMS
from server.auth.cli import keys_app
from server.cli import serve
from server.version import gateway_version

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Router-R1 routing proxy.")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"router-r1 {gateway_version()}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Router-R1 routing proxy."""


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


app.command()(serve)
app.command()(up)
app.command("train")(train_command(UPSTREAMS))
app.add_typer(registry_app, name="registry")
app.add_typer(keys_app, name="keys")
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")


def main() -> None:
    app()
