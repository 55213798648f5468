"""``/metrics`` text: this process's registry, or every worker's (multiprocess mode)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from server.metrics.metrics import Metrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def render(metrics: Metrics) -> tuple[bytes, str]:
    """(body, content type) of a scrape."""
    if multiprocess_dir() is None:
        return generate_latest(metrics.registry), CONTENT_TYPE_LATEST
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return generate_latest(merged), CONTENT_TYPE_LATEST


def reset_multiprocess_dir() -> None:
    """Empty the multiprocess directory before workers start (stale files of a previous run
    would be added to this one's counters). Call from the launcher, never from a worker."""
    directory = multiprocess_dir()
    if directory is None:
        return
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


def worker_exited(pid: int) -> None:
    """Drop a finished worker's live gauges (its in-flight count) in multiprocess mode."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
