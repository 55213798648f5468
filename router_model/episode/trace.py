"""The ``router`` object returned to clients and stored as a request's trace.

One schema for both kinds of request: an episode (``mode="episode"``: one step per policy
turn, each with the upstream call it made) and a passthrough (``mode="passthrough"``: one
step, the upstream call). Times: ``started_at`` is Unix time; every step's ``started_ms`` and
``upstream_started_ms`` are offsets from it, so the trace can be drawn on a time axis and
turned into spans with real start and end times after the request.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

StepAction = Literal["route", "answer", "invalid", "none", "passthrough", "fallback"]
"""A policy turn's action (``route`` ... ``none``), a passthrough's one call, or the call to a
profile's fallback model that answered instead of the policy."""
Outcome = Literal[
    "answer", "no_answer", "deadline_exceeded", "completed", "error", "cancelled", "fallback"
]
"""``answer``/``no_answer``/``deadline_exceeded``: how an episode ended; ``completed``: a
passthrough that got its reply; ``error``: a failure ended the request (engine, upstream);
``cancelled``: the client left; ``fallback``: a fallback model answered instead of the policy."""
FallbackReason = Literal["engine_unavailable", "no_answer", "deadline_exceeded"]
"""Why a profile's fallback model was asked: the policy engine failed (before or while the
episode played), the episode ended without an ``<answer>``, or its deadline passed."""
Mode = Literal["episode", "passthrough"]

REPLY_EXCERPT_CHARS = 500

UPSTREAM_UNKNOWN_MODEL = "unknown_model"
UPSTREAM_NOT_EXECUTED = "not_executed"
UPSTREAM_DEADLINE = "deadline_exceeded"
UPSTREAM_CANCELLED = "cancelled"
UPSTREAM_COST_CAP = "cost_cap"
UPSTREAM_CALL_CAP = "call_cap"
"""Step statuses besides the upstream pool's own (``ok``, ``cached``, ``timeout``, ...):
the written name resolved to no pool model; a route in the final turn (never executed);
the request deadline passed while the route was in flight; the request was cancelled (the
client left, or a failure elsewhere ended it) while the route was in flight; the route was
not executed because its worst-case cost would pass the request's ``max_cost_usd``, or one
more call would pass its ``max_upstream_calls``."""
CAP_STATUSES = (UPSTREAM_COST_CAP, UPSTREAM_CALL_CAP)


class _Frozen(BaseModel):
    # list fields default through a factory: a literal ``[]`` default is deep-copied by
    # pydantic on every instance (a trace is built per request)
    model_config = ConfigDict(frozen=True, extra="forbid")


class RouteStep(_Frozen):
    """One policy turn and, for a route, the upstream call it made.

    ``cost_usd`` is this turn's policy cost plus its upstream cost. ``written_model`` is
    the name as the policy wrote it, ``model`` the registry name it resolved to.
    ``usage_estimated``: some of this step's tokens are an estimate (a call cut off before
    its usage arrived: the tokens were still paid for).
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
    upstream_attempts: int = 0
    deployment: str | None = None
    """Which of the model's deployments served the call (its last attempt)."""
    cached: bool = False
    shared: bool = False
    """The reply of an identical call another request had in flight: that one paid for it,
    this step's upstream cost is 0."""
    policy_prompt_tokens: int = 0
    policy_completion_tokens: int = 0
    cached_tokens: int | None = None
    """Policy prompt tokens the engine reused from its prefix cache, when it says."""
    upstream_prompt_tokens: int = 0
    upstream_completion_tokens: int = 0
    usage_estimated: bool = False
    cost_usd: float = 0.0
    policy_cost_usd: float = 0.0
    upstream_cost_usd: float = 0.0
    """The policy's and the upstream call's parts of ``cost_usd`` (a cache hit's is 0)."""
    policy_latency_ms: float = 0.0
    upstream_latency_ms: float = 0.0
    started_ms: float = 0.0
    """When the step's first call started, after ``RouterTrace.started_at``."""
    upstream_started_ms: float | None = None
    """When its upstream call started; None when it made none."""
    replica: str | None = None
    """The policy engine server that generated this turn, when the profile has several."""
    failover_from: list[str] = Field(default_factory=list)
    """Servers that failed this episode since its previous turn: it moved to ``replica``
    (the prompt is token ids, so the continuation is exact; only the prefix cache is lost)."""


class RouterTotals(_Frozen):
    """Sums over the request.

    ``routes`` counts executed route actions (an unknown model name included: it gets
    the ``None`` observation without a call); ``models`` the registry names called, in
    order of first use. The final turn's route is never executed, so never counted.

    ``raw_cost`` is the reference's cost in its own units (spec section 5): the sum of
    upstream completion tokens times the model's USD per 1M output tokens, not divided
    by 1e6 (cache hits count their tokens). ``overhead_ms`` is ``total_ms`` minus the
    time spent waiting on the policy engine and on upstream models.
    """

    routes: int = 0
    models: list[str] = Field(default_factory=list)
    upstream_calls: int = 0
    """Upstream requests sent (retries and a fallback included; cache hits are not calls)."""
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

    @property
    def prompt_tokens(self) -> int:
        return self.policy_prompt_tokens + self.upstream_prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.policy_completion_tokens + self.upstream_completion_tokens


class FallbackInfo(_Frozen):
    """The profile's fallback model was asked to answer the user's messages instead of the
    policy: ``status`` is its call's (``ok`` when it answered: outcome ``fallback``; a failure
    or a cap status otherwise), ``detail`` what the episode ran into (the engine's error)."""

    model: str
    reason: FallbackReason
    status: str = "ok"
    detail: str | None = None


class RouterTrace(_Frozen):
    """What the gateway did for one request."""

    request_id: str
    mode: Mode = "episode"
    profile: str | None = None
    policy_model: str | None = None
    model: str | None = None
    """The passthrough model (None for an episode)."""
    outcome: Outcome
    error: str | None = None
    """One line: why the request failed (outcome ``error``)."""
    started_at: float = 0.0
    answer: str | None = None
    steps: list[RouteStep] = Field(default_factory=list)
    totals: RouterTotals = RouterTotals()
    fallback: FallbackInfo | None = None
    """Set when the fallback model was asked; its call is the last step (action ``fallback``)."""


def trace_json(trace: RouterTrace) -> bytes:
    """``trace.model_dump_json()`` as bytes, written by orjson from the models' field values:
    the same bytes (tests/router_model/episode/test_trace.py) for about a third of the CPU.
    Every request's trace is written into its response and into the trace store, so this is
    on the hot path (a passthrough's trace, twice: about 20 µs saved, bench/bench_proxy.py).
    It holds because these models have no serializers, aliases, computed or excluded fields;
    the test fails if one is added."""
    return orjson.dumps(trace, default=_field_values)


def _field_values(value: object) -> dict[str, Any]:
    if isinstance(value, BaseModel):  # a frozen model's __dict__: its fields, in order
        return value.__dict__
    raise TypeError(f"{type(value).__name__} is not part of a trace")


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
