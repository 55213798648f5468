"""An episode's trace with its profile's fallback call added: one more step, and its spend.

The fallback call is the episode's last step (action ``fallback``); the totals count it (its
tokens, cost, time, the model among ``models`` and its requests among ``upstream_calls``), so
the cost the client is told and the spend recorded include everything the request paid for.
When the fallback answered, the outcome is ``fallback``; when it failed (or a cap stopped it),
the episode's own outcome stays, and the step says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from router_model.episode.trace import (
    CAP_STATUSES,
    FallbackInfo,
    FallbackReason,
    RouterTotals,
    RouterTrace,
    RouteStep,
)

if TYPE_CHECKING:
    from server.lifecycle.request import UpstreamCall


@dataclass
class FallbackCall:
    """The fallback call of one request, filled in as it goes."""

    call: UpstreamCall
    reason: FallbackReason
    detail: str | None = None  # one line: what the episode ran into (the engine's error)

    @property
    def answered(self) -> bool:
        return self.call.status == "ok"


def with_fallback(trace: RouterTrace, fallback: FallbackCall, total_ms: float) -> RouterTrace:
    """``trace`` (the episode's, as it stands) with the fallback step and its spend."""
    call = fallback.call
    executed = call.status not in CAP_STATUSES
    latency_ms = call.latency_ms or max(total_ms - call.started_ms, 0.0)
    step = RouteStep(
        index=len(trace.steps),
        action="fallback",
        written_model=call.model.name,
        model=call.model.name,
        upstream_status=call.status,
        upstream_error=call.error,
        upstream_attempts=call.attempts,
        upstream_prompt_tokens=call.prompt_tokens,
        upstream_completion_tokens=call.completion_tokens,
        usage_estimated=call.usage_estimated,
        cost_usd=call.cost_usd,
        upstream_cost_usd=call.cost_usd,
        upstream_latency_ms=latency_ms if executed else 0.0,
        started_ms=call.started_ms,
        upstream_started_ms=call.started_ms if executed else None,
    )
    totals = trace.totals
    models = list(totals.models)
    if executed and call.model.name not in models:
        models.append(call.model.name)
    upstream_ms = totals.upstream_time_ms + step.upstream_latency_ms
    merged = totals.model_copy(
        update={
            "models": models,
            "upstream_calls": totals.upstream_calls + call.attempts,
            "cost_usd": totals.cost_usd + call.cost_usd,
            "upstream_cost_usd": totals.upstream_cost_usd + call.cost_usd,
            "raw_cost": totals.raw_cost + call.completion_tokens * call.model.pricing.output_per_1m,
            "upstream_prompt_tokens": totals.upstream_prompt_tokens + call.prompt_tokens,
            "upstream_completion_tokens": totals.upstream_completion_tokens
            + call.completion_tokens,
            "upstream_time_ms": upstream_ms,
            "total_ms": max(total_ms, totals.total_ms),
            "overhead_ms": max(
                max(total_ms, totals.total_ms) - totals.policy_time_ms - upstream_ms, 0.0
            ),
        }
    )
    return trace.model_copy(
        update={
            "steps": [*trace.steps, step],
            "totals": RouterTotals.model_validate(merged.model_dump()),
            "outcome": "fallback" if fallback.answered else trace.outcome,
            "error": None if fallback.answered else trace.error,
            "fallback": FallbackInfo(
                model=call.model.name,
                reason=fallback.reason,
                status=call.status,
                detail=fallback.detail,
            ),
        }
    )
