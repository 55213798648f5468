"""``router-r1 eval run|report``: benchmark any target the proxy serves; tables and a plot."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from router_model.eval.questions import SMOKE_FILE, EvalItem, load_questions
from router_model.eval.report import summarize, write_report
from router_model.eval.runner import read_results, run_eval
from router_model.eval.targets import DIRECT_PROMPT, TargetError

eval_app = typer.Typer(
    no_args_is_help=True, help="Evaluate a router profile or model via the proxy."
)


@eval_app.command("run")
def run_command(
    target: Annotated[
        str, typer.Option(help="Router profile, registry model, or random:MODEL_A,MODEL_B,...")
    ],
    data: Annotated[
        list[Path] | None,
        typer.Option(
            help="Question files (.parquet from data prepare, .json, .jsonl); repeatable."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (resumable).")] = None,
    base_url: Annotated[str, typer.Option(help="The proxy.")] = "http://127.0.0.1:8080",
    api_key: Annotated[
        str | None, typer.Option(help="Proxy API key (or ROUTER_R1_API_KEY).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1)] = 8,
    limit: Annotated[int | None, typer.Option(min=1, help="At most N questions per file.")] = None,
    timeout_s: Annotated[float, typer.Option(min=1)] = 600.0,
    prompt: Annotated[
        str, typer.Option(help="Prompt for plain models ({question}).")
    ] = DIRECT_PROMPT,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Ask every question, append results as they come, then write the report."""
    files = data or [SMOKE_FILE]
    items: list[EvalItem] = []
    try:
        for path in files:
            items += load_questions(path)[:limit]
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    safe = target.replace("/", "_").replace(":", "_").replace(",", "+")
    run_dir = out or Path("runs") / "eval" / safe
    started = time.perf_counter()
    try:
        written = asyncio.run(
            run_eval(
                items,
                run_dir,
                target,
                base_url=base_url,
                api_key=api_key or os.environ.get("ROUTER_R1_API_KEY"),
                concurrency=concurrency,
                timeout_s=timeout_s,
                prompt=prompt,
                progress=progress,
            )
        )
    except (TargetError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    errors = sum(1 for r in written if r.get("error"))
    typer.echo(
        f"{len(written)} questions asked in {time.perf_counter() - started:.1f}s "
        f"({errors} errors; rerun to retry them)"
    )
    paths = write_report([run_dir], run_dir / "report")
    for name, summary in summarize(read_results(run_dir)).items():
        typer.echo(
            f"{name}: EM {summary.em:.3f} F1 {summary.f1:.3f} routes {summary.routes_mean:.2f} "
            f"raw cost {summary.raw_cost_mean:.1f} USD {summary.cost_usd_total:.6f} "
            f"p50 {summary.latency_p50_s:.2f}s p95 {summary.latency_p95_s:.2f}s "
            f"(n={summary.questions})"
        )
    typer.echo(f"report: {paths['markdown']}, {paths['json']}, {paths['plot']}")
    raise typer.Exit(1 if errors else 0)


@eval_app.command("report")
def report_command(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (one table row each).")],
    out: Annotated[
        Path, typer.Option(help="Where table.md, summary.json, cost_vs_em.png go.")
    ] = Path("runs/eval/report"),
) -> None:
    """Merge several runs (Router-R1, single models, random router...) into one report."""
    missing = [str(r) for r in runs if not (r / "results.jsonl").exists()]
    if missing:
        typer.echo(f"error: no results.jsonl in {', '.join(missing)}", err=True)
        raise typer.Exit(2)
    paths = write_report(runs, out)
    typer.echo(paths["markdown"].read_text(encoding="utf-8"))
    typer.echo(f"report: {paths['markdown']}, {paths['json']}, {paths['plot']}")
