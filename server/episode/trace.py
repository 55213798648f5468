"""The ``router`` object returned to clients: one step per policy turn, and totals."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

StepAction = Literal["route", "answer", "invalid", "none"]
Outcome = Literal["answer", "no_answer", "deadline_exceeded"]

REPLY_EXCERPT_CHARS = 500

UPSTREAM_UNKNOWN_MODEL = "unknown_model"
UPSTREAM_NOT_EXECUTED = "not_executed"
UPSTREAM_DEADLINE = "deadline_exceeded"
"""Step statuses besides the upstream pool's own (``ok``, ``cached``, ``timeout``, ...):
the written name resolved to no pool model; a route in the final turn (never executed);
the request deadline passed while the route was in flight."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RouteStep(_Frozen):
    """One policy turn and, for a route, the upstream call it made.

    ``cost_usd`` is this turn's policy cost (``policy_cost_usd``) plus its upstream cost.
    ``written_model`` is the name as the policy wrote it, ``model`` the registry name it
    resolved to.

    Timing (what spans and the trace viewer draw): ``started_ms`` is when the turn's first
    policy engine call began and ``upstream_started_ms`` when its upstream call began (None:
    no call), both in ms from the trace's start. ``cached_tokens`` is how many of the turn's
    policy prompt tokens the engine reused from its prefix cache, when the engine said.
    ``upstream_attempts`` counts the upstream tries (retries included; None: no call).
    """

    index: int
    think: str = ""
    action: StepAction
    written_model: str | None = None
    model: str | None = None
    query: str | None = None
    reply_excerpt: str | None = None
    upstream_status: str | None = None
    upstream_error: str | None = None
    cached: bool = False
    policy_prompt_tokens: int = 0
    policy_completion_tokens: int = 0
    upstream_prompt_tokens: int = 0
    upstream_completion_tokens: int = 0
    cost_usd: float = 0.0
    policy_cost_usd: float = 0.0
    policy_latency_ms: float = 0.0
    upstream_latency_ms: float = 0.0
    started_ms: float = 0.0
    upstream_started_ms: float | None = None
    cached_tokens: int | None = None
    upstream_attempts: int | None = None


class RouterTotals(_Frozen):
    """Sums over the episode.

    ``routes`` counts executed route actions (an unknown model name included: it gets
    the ``None`` observation without a call); ``models`` the registry names called, in
    order of first use. The final turn's route is never executed, so never counted.

    ``raw_cost`` is the reference's cost in its own units (spec section 5): the sum of
    upstream completion tokens times the model's USD per 1M output tokens, not divided
    by 1e6 (cache hits count their tokens). ``overhead_ms`` is ``total_ms`` minus the
    time spent waiting on the policy engine and on upstream models.
    """

    routes: int = 0
    models: list[str] = []
    cost_usd: float = 0.0
    policy_cost_usd: float = 0.0
    upstream_cost_usd: float = 0.0
    raw_cost: float = 0.0
    policy_prompt_tokens: int = 0
    policy_completion_tokens: int = 0
    upstream_prompt_tokens: int = 0
    upstream_completion_tokens: int = 0
    policy_time_ms: float = 0.0
    upstream_time_ms: float = 0.0
    overhead_ms: float = 0.0
    total_ms: float = 0.0


class RouterTrace(_Frozen):
    """What the router did for one request.

    ``started_at`` is the episode's start in Unix seconds (step offsets count from it);
    ``answer`` the answer text when the outcome is ``answer``.
    """

    request_id: str
    profile: str
    policy_model: str
    outcome: Outcome
    started_at: float = 0.0
    answer: str | None = None
    steps: list[RouteStep] = []
    totals: RouterTotals = RouterTotals()


def extract_think(turn: str) -> str:
    """The stripped text of the turn's ``<think>`` blocks, joined by newlines.

    An unclosed ``<think>`` (a turn cut by its token budget) runs to the end of the turn.
    """
    parts: list[str] = []
    rest = turn
    while (start := rest.find("<think>")) != -1:
        rest = rest[start + len("<think>") :]
        end = rest.find("</think>")
        parts.append(rest if end == -1 else rest[:end])
        rest = "" if end == -1 else rest[end + len("</think>") :]
    return "\n".join(p.strip() for p in parts if p.strip())
