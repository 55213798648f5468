"""Synthetic router traces with known timings, costs and contents (span builder, Phoenix and
trace viewer tests)."""

from __future__ import annotations

from router_model.episode.trace import RouterTotals, RouterTrace, RouteStep

POLICY_MODEL = "ulab-ai/Router-R1-Qwen2.5-3B-Instruct"
QWEN = "Qwen2.5-7B-Instruct"
LLAMA = "LLaMA-3.1-8B-Instruct"


def three_step_trace(
    request_id: str = "chatcmpl-test",
    *,
    started_at: float = 1_700_000_000.0,
    profile: str = "router-r1",
) -> RouterTrace:
    """Turn 0 routes to Qwen (ok, two attempts), turn 1 to LLaMA (times out), turn 2 answers.

    Timeline (ms from ``started_at``): turn 0 at 10 (its call 300-1300), turn 1 at 1400 (its
    call 1700-2700), turn 2 at 2800; the episode ends at 3100.
    """
    steps = [
        RouteStep(
            index=0,
            think="I should ask who wrote it.",
            action="route",
            written_model=QWEN,
            model=QWEN,
            query="who wrote War and Peace?",
            reply_excerpt="Leo Tolstoy wrote it.",
            upstream_status="ok",
            policy_prompt_tokens=120,
            policy_completion_tokens=30,
            upstream_prompt_tokens=40,
            upstream_completion_tokens=8,
            cost_usd=0.0015,
            policy_cost_usd=0.0005,
            upstream_cost_usd=0.001,
            policy_latency_ms=290.0,
            upstream_latency_ms=1000.0,
            started_ms=10.0,
            upstream_started_ms=300.0,
            cached_tokens=None,
            upstream_attempts=2,
        ),
        RouteStep(
            index=1,
            think="Let me double-check <b>that</b>.",
            action="route",
            written_model="llama-3.1-8b",
            model=LLAMA,
            query="is it Tolstoy?",
            upstream_status="timeout",
            upstream_error="timed out after 1.0 s",
            policy_prompt_tokens=180,
            policy_completion_tokens=25,
            cost_usd=0.0004,
            policy_cost_usd=0.0004,
            policy_latency_ms=300.0,
            upstream_latency_ms=1000.0,
            started_ms=1400.0,
            upstream_started_ms=1700.0,
            cached_tokens=150,
            upstream_attempts=1,
        ),
        RouteStep(
            index=2,
            think="Now I know.",
            action="answer",
            policy_prompt_tokens=210,
            policy_completion_tokens=12,
            cost_usd=0.0003,
            policy_cost_usd=0.0003,
            policy_latency_ms=290.0,
            started_ms=2800.0,
            cached_tokens=205,
        ),
    ]
    totals = RouterTotals(
        routes=2,
        models=[QWEN, LLAMA],
        cost_usd=0.0022,
        policy_cost_usd=0.0012,
        upstream_cost_usd=0.001,
        raw_cost=2.4,
        policy_prompt_tokens=510,
        policy_completion_tokens=67,
        upstream_prompt_tokens=40,
        upstream_completion_tokens=8,
        policy_time_ms=880.0,
        upstream_time_ms=2000.0,
        overhead_ms=220.0,
        total_ms=3100.0,
    )
    return RouterTrace(
        request_id=request_id,
        profile=profile,
        policy_model=POLICY_MODEL,
        outcome="answer",
        started_at=started_at,
        answer="Leo Tolstoy",
        steps=steps,
        totals=totals,
    )
