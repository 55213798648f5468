"""``router-r1 train CONFIG``: launch a veRL or TRL training run.

The entry point builds the command with :func:`train_command`, naming the factory of the
run's upstream clients (:mod:`router_model.training.upstreams`)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from router_model.training.config import TrainConfig, apply_assignments
from router_model.training.launch import build_launch


def train_command(upstreams: str) -> Callable[..., None]:
    """The ``train`` command, its runs calling upstreams through ``upstreams`` (module:factory)."""

    def train(
        config: Annotated[
            Path,
            typer.Argument(help="A training config (configs/verl/*.yaml, configs/trl/*.yaml)."),
        ],
        set_: Annotated[
            list[str] | None,
            typer.Option(
                "--set", help="KEY=VALUE: router.X, grpo.X, overrides.<hydra key>, or a field."
            ),
        ] = None,
        run_dir: Annotated[
            Path | None,
            typer.Option(help="Where the run's files go (default runs/train/<config>-<time>)."),
        ] = None,
        python: Annotated[
            str | None,
            typer.Option(help="Interpreter to train with (default: see router-r1 docs)."),
        ] = None,
        dry_run: Annotated[
            bool, typer.Option(help="Write the run files and print the command.")
        ] = False,
    ) -> None:
        """Train a Router-R1 policy: veRL (GPUs, the paper's PPO run) or TRL (CPU smoke runs)."""
        try:
            loaded = apply_assignments(TrainConfig.from_file(config), list(set_ or []))
        except (OSError, ValueError, ValidationError) as exc:
            typer.echo(f"error: {config}: {exc}", err=True)
            raise typer.Exit(2) from None
        directory = (
            run_dir or Path("runs") / "train" / f"{config.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        try:
            launch = build_launch(loaded, directory.resolve(), python, upstreams=upstreams)
        except ValueError as exc:
            typer.echo(f"error: {config}: {exc}", err=True)
            raise typer.Exit(2) from None
        directory.mkdir(parents=True, exist_ok=True)
        for path, content in launch.files.items():
            path.write_text(content, encoding="utf-8")
        (directory / "command.sh").write_text(launch.shell() + "\n", encoding="utf-8")
        typer.echo(f"run directory: {directory}")
        typer.echo(launch.shell())
        if dry_run:
            return
        completed = subprocess.run(launch.argv, env=launch.env, check=False)
        raise typer.Exit(completed.returncode)

    return train
