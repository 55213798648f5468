"""Per-dataset figures of one or more eval runs: JSON, Markdown tables, a cost-vs-EM plot.

Tables follow the paper's layouts: Table 1 (exact match per dataset, one row per method,
average over datasets) and Table 4 (per method and dataset: EM, raw cost, routes), here
with F1, USD cost, latency and format failures added.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from router_model.data.flashrag import EVAL_SETS
from router_model.eval.runner import RUN_INFO, latest_results, read_results

DISPLAY = {
    "nq": "NQ",
    "triviaqa": "TriviaQA",
    "popqa": "PopQA",
    "hotpotqa": "HotpotQA",
    "2wikimultihopqa": "2wiki",
    "musique": "Musique",
    "bamboogle": "Bamboogle",
}


@dataclass(frozen=True)
class DatasetSummary:
    dataset: str
    questions: int
    errors: int
    em: float
    f1: float
    routes_mean: float
    raw_cost_mean: float
    cost_usd_total: float
    cost_usd_mean: float
    latency_p50_s: float
    latency_p95_s: float
    format_failure_rate: float | None
    no_answer_rate: float


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, DatasetSummary]:
    latest = latest_results(records)
    by_set: dict[str, list[dict[str, Any]]] = {}
    for (dataset, _), record in latest.items():
        by_set.setdefault(dataset, []).append(record)
    out: dict[str, DatasetSummary] = {}
    for dataset, rows in by_set.items():
        ok = [r for r in rows if not r.get("error")]
        formats = [r["format_ok"] for r in ok if r.get("format_ok") is not None]
        out[dataset] = DatasetSummary(
            dataset=dataset,
            questions=len(ok),
            errors=len(rows) - len(ok),
            em=_mean([float(r["em"]) for r in ok]),
            f1=_mean([float(r["f1"]) for r in ok]),
            routes_mean=_mean([float(r["routes"]) for r in ok]),
            raw_cost_mean=_mean([float(r["raw_cost"]) for r in ok]),
            cost_usd_total=sum(float(r["cost_usd"]) for r in ok),
            cost_usd_mean=_mean([float(r["cost_usd"]) for r in ok]),
            latency_p50_s=percentile([float(r["latency_s"]) for r in ok], 0.5),
            latency_p95_s=percentile([float(r["latency_s"]) for r in ok], 0.95),
            format_failure_rate=(1 - _mean([float(f) for f in formats])) if formats else None,
            no_answer_rate=_mean([float(r.get("outcome", "answer") != "answer") for r in ok]),
        )
    return out


def _order(datasets: set[str]) -> list[str]:
    known = [d for d in EVAL_SETS if d in datasets]
    return known + sorted(datasets - set(known))


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def markdown(runs: dict[str, dict[str, DatasetSummary]]) -> str:
    datasets = _order({d for summary in runs.values() for d in summary})
    heads = [DISPLAY.get(d, d) for d in datasets]
    lines = ["### Exact match (paper Table 1 layout)", ""]
    lines.append("| Method | " + " | ".join(heads) + " | Avg. |")
    lines.append("|---" * (len(heads) + 2) + "|")
    for method, summary in runs.items():
        ems = [summary[d].em if d in summary else None for d in datasets]
        present = [e for e in ems if e is not None and not math.isnan(e)]
        avg = _mean(present) if present else None
        lines.append(f"| {method} | " + " | ".join(_fmt(e) for e in ems) + f" | {_fmt(avg)} |")
    lines += ["", "### Per dataset: quality, cost, routes, latency (paper Table 4 layout)", ""]
    lines.append(
        "| Method | Dataset | N | EM | F1 | Raw cost | Cost (USD) | Routes | "
        "Latency p50 (s) | Latency p95 (s) | Format failures | No answer | Errors |"
    )
    lines.append("|---" * 13 + "|")
    for method, summary in runs.items():
        for d in datasets:
            if d not in summary:
                continue
            s = summary[d]
            lines.append(
                f"| {method} | {DISPLAY.get(d, d)} | {s.questions} | {_fmt(s.em)} | {_fmt(s.f1)} | "
                f"{_fmt(s.raw_cost_mean, 1)} | {s.cost_usd_total:.6f} | {_fmt(s.routes_mean, 2)} | "
                f"{_fmt(s.latency_p50_s, 2)} | {_fmt(s.latency_p95_s, 2)} | "
                f"{_fmt(s.format_failure_rate)} | {_fmt(s.no_answer_rate)} | {s.errors} |"
            )
    lines += [
        "",
        "Raw cost: the reference's units, mean per question (upstream completion tokens x USD "
        "per 1M output tokens, not divided by 1e6). Cost (USD): total over the questions, policy "
        "and upstream calls. Format failures: router profiles only.",
    ]
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, dict[str, DatasetSummary]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for method, summary in runs.items():
        points = [(s.raw_cost_mean, s.em, d) for d, s in summary.items() if not math.isnan(s.em)]
        if not points:
            continue
        xs, ys, _ = zip(*points, strict=True)
        ax.scatter(xs, ys, label=method, s=36)
        for x, y, name in points:
            ax.annotate(
                DISPLAY.get(name, name),
                (x, y),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.set_xlabel("raw cost per question (reference units: tokens x USD/1M)")
    ax.set_ylabel("exact match")
    ax.set_title("Cost vs exact match")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def method_name(run_dir: Path) -> str:
    info = run_dir / RUN_INFO
    if info.exists():
        return str(json.loads(info.read_text(encoding="utf-8")).get("target", run_dir.name))
    return run_dir.name


def write_report(run_dirs: Sequence[Path], out_dir: Path) -> dict[str, Path]:
    """``summary.json``, ``table.md`` and ``cost_vs_em.png`` for the runs in ``run_dirs``."""
    runs = {method_name(d): summarize(read_results(d)) for d in run_dirs}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "summary.json",
        "markdown": out_dir / "table.md",
        "plot": out_dir / "cost_vs_em.png",
    }
    payload = {m: {d: asdict(s) for d, s in summary.items()} for m, summary in runs.items()}
    paths["json"].write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown(runs), encoding="utf-8")
    plot(runs, paths["plot"])
    return paths
