"""``/metrics`` text: this process's registry, or every worker's (multiprocess mode)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric

from server.metrics.metrics import Metrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def render(metrics: Metrics) -> tuple[bytes, str]:
    """(body, content type) of a scrape."""
    if multiprocess_dir() is None:
        return generate_latest(metrics.registry), CONTENT_TYPE_LATEST
    directory = multiprocess_dir()
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    if directory is not None:
        merged.register(WorkerProcesses(directory))
    return generate_latest(merged), CONTENT_TYPE_LATEST


# a live worker's gauge files (a finished worker's are removed by ``worker_exited``)
_LIVE_FILE = re.compile(r"^gauge_live[a-z]*_(\d+)\.db$")


def live_worker_pids(directory: Path) -> list[int]:
    """The workers that are running, from their live-gauge files (each worker writes its
    in-flight gauge at start)."""
    pids = {int(m[1]) for p in directory.iterdir() if (m := _LIVE_FILE.match(p.name))}
    return sorted(pids)


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid


class WorkerProcesses:
    """``process_*`` of every live worker, labelled ``pid``: whichever worker answers a scrape
    reads the others' ``/proc`` (same host, same PID namespace), so no worker's figures pass
    for the gateway's. (``python_gc_*`` cannot be read from outside a process: not served.)"""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in live_worker_pids(self.directory):
            collector = ProcessCollector(pid=_constant(pid), registry=None)
            for family in collector.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = Metric(family.name, family.documentation, family.type)
                    families[family.name] = merged
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from families.values()


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
