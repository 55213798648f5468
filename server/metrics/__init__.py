"""Prometheus metrics of the gateway and their exposition."""

from server.metrics.exposition import render, reset_multiprocess_dir, worker_exited
from server.metrics.metrics import NONE, PASSTHROUGH, ROUTER, Metrics

__all__ = [
    "NONE",
    "PASSTHROUGH",
    "ROUTER",
    "Metrics",
    "render",
    "reset_multiprocess_dir",
    "worker_exited",
]
