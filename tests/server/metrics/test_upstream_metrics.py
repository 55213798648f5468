"""The upstream side's metrics: breaker state per deployment, shared (coalesced) calls."""

from __future__ import annotations

from router_model.episode.trace import RouterTotals, RouterTrace, RouteStep
from server.metrics import Metrics
from server.upstream.breaker import STATE_VALUES


def test_breaker_state_is_a_gauge_per_model_and_deployment() -> None:
    metrics = Metrics()
    metrics.breaker_changed("Multi", "a", STATE_VALUES["open"])
    metrics.breaker_changed("Multi", "b", STATE_VALUES["closed"])
    metrics.breaker_changed("Multi", "a", STATE_VALUES["half_open"])

    def state(deployment: str) -> float | None:
        return metrics.registry.get_sample_value(
            "router_r1_upstream_breaker_state", {"model": "Multi", "deployment": deployment}
        )

    assert (state("a"), state("b")) == (1.0, 0.0)


def test_a_shared_step_counts_as_shared_not_as_another_call() -> None:
    metrics = Metrics()
    steps = [
        RouteStep(index=0, action="route", model="M", upstream_status="ok", upstream_cost_usd=1.0),
        RouteStep(index=1, action="route", model="M", upstream_status="ok", shared=True),
    ]
    trace = RouterTrace(request_id="r", outcome="answer", steps=steps, totals=RouterTotals())
    metrics.trace_finished("p", trace)

    def calls(status: str) -> float | None:
        return metrics.registry.get_sample_value(
            "router_r1_upstream_calls_total", {"model": "M", "status": status}
        )

    assert (calls("ok"), calls("shared")) == (1.0, 1.0)
