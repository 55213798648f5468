"""The dashboard JSON is valid for Grafana's provisioning and uses only metrics we export."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.metrics import Metrics
from tests.deploy.dashboards import (
    METRIC_NAME,
    dashboard_files,
    expressions,
    load,
    panels,
)

SERIES_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")


def exported_series() -> set[str]:
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in SERIES_SUFFIXES)
    return names


def test_there_is_an_overview_dashboard() -> None:
    assert [p.name for p in dashboard_files()] == ["router-r1-overview.json"]


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_dashboard_is_valid(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_dashboard_uses_only_exported_metrics(path: Path) -> None:
    exported = exported_series()
    used = {name for _, expr in expressions(load(path)) for name in METRIC_NAME.findall(expr)}
    assert used, "no router_r1_ metric in the dashboard"
    assert sorted(used - exported) == []


def test_the_overview_covers_what_operators_watch() -> None:
    text = " ".join(expr for _, expr in expressions(load(dashboard_files()[0])))
    for needed in (
        "router_r1_requests_total",
        "router_r1_request_duration_seconds_bucket",
        "router_r1_overhead_seconds_bucket",
        "router_r1_request_cost_usd_sum",
        "router_r1_cost_usd_total",
        "router_r1_upstream_calls_total",
        "router_r1_routes_per_request_sum",
        "router_r1_request_errors_total",
        "router_r1_cache_lookups_total",
        "router_r1_rejections_total",
    ):
        assert needed in text, needed
