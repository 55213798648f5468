"""Evaluation harness: benchmark questions through a running proxy, tables and plots."""

from router_model.eval.questions import SMOKE_FILE, EvalItem, load_questions
from router_model.eval.report import DatasetSummary, markdown, summarize, write_report
from router_model.eval.runner import read_results, run_eval
from router_model.eval.targets import (
    DIRECT_PROMPT,
    ModelTarget,
    RandomRouterTarget,
    RouterProfileTarget,
    TargetReply,
    resolve_target,
)

__all__ = [
    "DIRECT_PROMPT",
    "SMOKE_FILE",
    "DatasetSummary",
    "EvalItem",
    "ModelTarget",
    "RandomRouterTarget",
    "RouterProfileTarget",
    "TargetReply",
    "load_questions",
    "markdown",
    "read_results",
    "resolve_target",
    "run_eval",
    "summarize",
    "write_report",
]
