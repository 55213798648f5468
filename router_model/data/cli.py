"""``router-r1 data prepare``: the training parquet and the seven evaluation sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from router_model.data.flashrag import EVAL_SETS, TRAIN_SETS, HubSource, LocalSource, QASource
from router_model.data.prepare import EVAL_PER_SET, SEED, TRAIN_PER_SET, prepare
from router_model.registry import Registry, RegistryError

data_app = typer.Typer(no_args_is_help=True, help="Training and evaluation data.")


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


@data_app.command("prepare")
def prepare_command(
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("data/router-r1"),
    source: Annotated[
        Path | None,
        typer.Option(help="Local FlashRAG layout DIR/<set>/<split>.jsonl (default: the HF hub)."),
    ] = None,
    registry: Annotated[Path, typer.Option(help="Registry file (the prompt's model pool).")] = Path(
        "model_registry.yaml"
    ),
    profile: Annotated[
        str, typer.Option(help="Router profile whose prompt the rows carry.")
    ] = "router-r1",
    train_sets: Annotated[str, typer.Option(help="Comma-separated; empty: none.")] = ",".join(
        TRAIN_SETS
    ),
    eval_sets: Annotated[str, typer.Option(help="Comma-separated; empty: none.")] = ",".join(
        EVAL_SETS
    ),
    train_per_set: Annotated[int, typer.Option(min=1)] = TRAIN_PER_SET,
    eval_per_set: Annotated[int, typer.Option(min=1)] = EVAL_PER_SET,
    seed: int = SEED,
) -> None:
    """Build train_nh_<variant>.parquet and test_<set>_<variant>.parquet (reference schema)."""
    try:
        loaded = Registry.from_file(registry)
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    qa: QASource = LocalSource(source) if source is not None else HubSource()
    try:
        files = prepare(
            qa,
            out,
            loaded,
            profile,
            train_sets=_names(train_sets),
            eval_sets=_names(eval_sets),
            train_per_set=train_per_set,
            eval_per_set=eval_per_set,
            seed=seed,
        )
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for f in files:
        typer.echo(f"{f.path}: {f.rows} rows ({', '.join(f.data_sources)})")
