"""Running questions through a target with bounded concurrency; resumable results file.

``results.jsonl`` in the run directory gets one line per answered question as soon as it is
answered. A second run with the same directory skips every question that already has a
result without an error (errors are retried); ``run.json`` records the target, and a run
directory cannot be resumed with another target.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from router_model.eval.questions import EvalItem
from router_model.eval.targets import DIRECT_PROMPT, Target, TargetError, resolve_target
from router_model.rewards import exact_match, f1_score

RESULTS = "results.jsonl"
RUN_INFO = "run.json"


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / RESULTS
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash: that question is asked again
    return records


def latest_results(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The last record per (dataset, id)."""
    return {(str(r["dataset"]), str(r["id"])): r for r in records}


def _record(
    item: EvalItem, target: str, reply: Any = None, error: str | None = None
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "dataset": item.dataset,
        "id": item.id,
        "question": item.question,
        "golds": list(item.golds),
        "target": target,
        "error": error,
    }
    if reply is None:
        return base
    return {
        **base,
        "answer": reply.answer,
        "em": exact_match(reply.answer, item.golds),
        "f1": f1_score(reply.answer, item.golds),
        "routes": reply.routes,
        "cost_usd": reply.cost_usd,
        "raw_cost": reply.raw_cost,
        "latency_s": reply.latency_s,
        "models": list(reply.models),
        "outcome": reply.outcome,
        "format_ok": reply.format_ok,
    }


def _check_run_info(run_dir: Path, target: str) -> None:
    path = run_dir / RUN_INFO
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8")).get("target")
        if previous != target:
            raise ValueError(
                f"{run_dir} holds results for target {previous!r}, not {target!r}: "
                "use another --out directory"
            )
    else:
        path.write_text(json.dumps({"target": target}, indent=2) + "\n", encoding="utf-8")


def _prepare_run_dir(run_dir: Path, target: str) -> set[tuple[str, str]]:
    """Create or check the run directory; the questions already answered without error."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_run_info(run_dir, target)
    return {k for k, r in latest_results(read_results(run_dir)).items() if not r.get("error")}


async def run_eval(
    items: Sequence[EvalItem],
    run_dir: Path,
    target_spec: str,
    *,
    base_url: str = "http://127.0.0.1:8080",
    api_key: str | None = None,
    concurrency: int = 8,
    timeout_s: float = 600.0,
    prompt: str = DIRECT_PROMPT,
    progress: bool = True,
    client: httpx.AsyncClient | None = None,
) -> list[dict[str, Any]]:
    """Ask every not-yet-answered question; returns the records written by this call."""
    done = await asyncio.to_thread(_prepare_run_dir, run_dir, target_spec)
    todo = [item for item in items if (item.dataset, item.id) not in done]
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    own = client is None
    http = client or httpx.AsyncClient(
        base_url=base_url.removesuffix("/v1").rstrip("/"),
        timeout=httpx.Timeout(timeout_s, connect=10.0),
        headers=headers,
        limits=httpx.Limits(max_connections=max(concurrency, 1)),
    )
    written: list[dict[str, Any]] = []
    try:
        target: Target = await resolve_target(http, target_spec, prompt=prompt)
        bar = _progress(len(todo), target_spec) if progress else None
        gate = asyncio.Semaphore(max(concurrency, 1))
        results = run_dir / RESULTS
        if results.exists() and results.stat().st_size and not results.read_bytes().endswith(b"\n"):
            with results.open("a", encoding="utf-8") as cut:
                cut.write("\n")  # end a line cut by a crash: it is skipped when read
        with results.open("a", encoding="utf-8") as sink:

            async def one(index: int, item: EvalItem) -> None:
                async with gate:
                    try:
                        reply = await target.ask(http, item.question, index)
                        record = _record(item, target_spec, reply)
                    except (TargetError, httpx.HTTPError, KeyError, ValueError) as exc:
                        record = _record(
                            item, target_spec, error=f"{type(exc).__name__}: {exc}"[:500]
                        )
                sink.write(json.dumps(record) + "\n")
                sink.flush()
                written.append(record)
                if bar is not None:
                    bar.update(1)

            await asyncio.gather(*(one(i, item) for i, item in enumerate(todo)))
        if bar is not None:
            bar.close()
    finally:
        if own:
            await http.aclose()
    return written


def _progress(total: int, label: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="q", dynamic_ncols=True)
