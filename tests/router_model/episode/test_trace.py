"""router_model/episode/trace.py: ``trace_json`` writes exactly ``model_dump_json()``'s bytes
(a measured shortcut on every request's path), for every field kind a trace has."""

from __future__ import annotations

import random

import pytest
from pydantic import BaseModel

from router_model.episode.trace import (
    FallbackInfo,
    RouterTotals,
    RouterTrace,
    RouteStep,
    trace_json,
)

AWKWARD_FLOATS = [0.1 + 0.2, 1e16, 1e-7, 5e-324, 1.7976931348623157e308, 123456789.123, 0.0, 2.5]


def _trace(seed: int) -> RouterTrace:
    rng = random.Random(seed)
    value = rng.choice([*AWKWARD_FLOATS, rng.random() * 10 ** rng.randint(-12, 20)])
    step = RouteStep(
        index=seed,
        action=rng.choice(["route", "answer", "invalid", "passthrough", "fallback"]),
        think='é \u2028 \x00 "quoted" \\ <tag> 🚀' * (seed % 3),
        written_model="Qwen/Qwen2.5-7B" if seed % 2 else None,
        model="m",
        query="q" * seed,
        cached=bool(seed % 2),
        cached_tokens=None if seed % 2 else seed,
        cost_usd=value,
        upstream_latency_ms=value / 3,
        upstream_started_ms=None if seed % 3 else value,
        failover_from=["http://a:8000"] * (seed % 2),
    )
    return RouterTrace(
        request_id=f"req-{seed}",
        mode="episode" if seed % 2 else "passthrough",
        outcome="answer",
        error=None if seed % 4 else "one line\nand another",
        started_at=1_700_000_000.123456 + value,
        answer="Paris — ça" if seed % 2 else None,
        steps=[step, step],
        totals=RouterTotals(models=["m", "ü"], routes=seed, cost_usd=value * 7, raw_cost=value),
        fallback=FallbackInfo(model="x", reason="no_answer") if seed % 3 == 0 else None,
    )


@pytest.mark.parametrize("seed", range(200))
def test_trace_json_is_model_dump_json(seed: int) -> None:
    trace = _trace(seed)
    assert trace_json(trace) == trace.model_dump_json().encode()


def test_an_empty_trace_too() -> None:
    trace = RouterTrace(request_id="r", outcome="error")
    assert trace_json(trace) == trace.model_dump_json().encode()


@pytest.mark.parametrize("model", [RouterTrace, RouteStep, RouterTotals, FallbackInfo])
def test_the_shortcut_still_holds_for_the_schema(model: type[BaseModel]) -> None:
    """What would make the bytes differ: a serializer, an alias, a computed or excluded
    field. Adding one fails here first (then drop the shortcut or handle it)."""
    assert not model.model_computed_fields
    assert not model.__pydantic_decorators__.field_serializers
    assert not model.__pydantic_decorators__.model_serializers
    for name, field in model.model_fields.items():
        assert field.alias in (None, name)
        assert field.serialization_alias in (None, name)
        assert not field.exclude
