"""The provisioned Grafana dashboards and the PromQL of their panels."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.deploy.compose import REPO

DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
METRIC_NAME = re.compile(r"\b(router_r1_[a-z0-9_]+)\b")


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that queries (rows excluded, nested row panels included)."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        if panel.get("type") == "row":
            found += [p for p in panel.get("panels", []) if p.get("type") != "row"]
        else:
            found.append(panel)
    return found


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target."""
    return [(panel["title"], t["expr"]) for panel in panels(dashboard) for t in panel["targets"]]


TEMPLATE_VARIABLES = ("instance", "profile", "model")  # multi-value, "All" = ".*"
VLLM_METRIC = re.compile(r"\b(vllm:[a-z0-9_:]+)\b")


LLAMACPP_METRIC = re.compile(r"\b(llamacpp:[a-z0-9_:]+)\b")


def is_vllm(expr: str) -> bool:
    """Whether the PromQL reads vLLM's own metrics (scraped from vLLM, not the gateway)."""
    return bool(VLLM_METRIC.search(expr))


def is_llamacpp(expr: str) -> bool:
    """Whether the PromQL reads llama-server's own metrics (``--metrics``)."""
    return bool(LLAMACPP_METRIC.search(expr))


def is_engine(expr: str) -> bool:
    """An engine's own series: checked against that real engine, not the gateway."""
    return is_vllm(expr) or is_llamacpp(expr)


def substitute(
    expr: str, rate_interval: str, range_: str, variables: dict[str, str] | None = None
) -> str:
    """Grafana's interval and template variables replaced as Grafana would at query time;
    a template variable left at "All" becomes its ``allValue`` (``.*``)."""
    values = {name: ".*" for name in TEMPLATE_VARIABLES} | (variables or {})
    expr = (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$__interval", rate_interval)
        .replace("$__range", range_)
    )
    for name, value in values.items():
        expr = expr.replace(f"${name}", value)
    return expr
