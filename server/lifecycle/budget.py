"""The worst-case cost a request reserves from its key's budget at admission.

A key with a budget reserves each request's worst case when it is admitted and settles the
real cost when the request closes (:class:`~server.auth.access.AccessControl` ``admit(caller,
reserve_usd=...)`` then ``settle(...)``), so concurrent requests can never spend more than the
budget: admission refuses (402) a request whose worst case does not fit in what is neither
spent nor held by requests in flight.

The worst case is an upper bound of what the request can be billed:

- an episode: every policy turn (``max_routes + 1``) at its largest (``max_context_tokens``
  prompt, the turn's ``max_tokens``) at the policy's price; every route it may execute
  (``max_routes``, or fewer under ``max_upstream_calls``) at the dearest pool model, with the
  largest query a turn can write (``max_turn_tokens``) and ``upstream_max_tokens``; and its
  fallback call, when the profile has one. With a ``max_cost_usd`` cap the routes and the
  fallback cannot spend more than the cap (:mod:`router_model.episode.caps`), so the worst
  case is at most the policy turns plus the cap.
- a passthrough: its messages' worst-case tokens and its ``max_completion_tokens`` /
  ``max_tokens`` (the model's default when the request sets none) at the model's price.

Prompt tokens are estimated high (:func:`router_model.episode.caps.worst_case_prompt_tokens`).
A reservation lives until the request settles it, or its hold ends (the request's deadline
plus :data:`HOLD_MARGIN_S`, for a replica that died with requests in flight).
"""

from __future__ import annotations

from typing import Any

import orjson

from router_model.episode.caps import worst_case_call_usd, worst_case_prompt_tokens
from router_model.episode.settings import EpisodeSettings
from router_model.protocol.prompt import render_upstream_prompt
from router_model.registry import ModelSpec, Registry, RouterProfile

HOLD_MARGIN_S = 60.0
UNBOUNDED_S = 900.0


def chat_worst_case_usd(model: ModelSpec, body: dict[str, Any]) -> float:
    """The most one chat request ``body`` sent to ``model`` should cost: its messages'
    worst-case tokens and its ``max_completion_tokens``/``max_tokens`` (the model's default
    when the request sets none)."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    max_tokens = limit if isinstance(limit, int) and limit > 0 else model.defaults.max_tokens
    prompt = orjson.dumps(body.get("messages")).decode()
    return worst_case_call_usd(model.pricing, prompt, max_tokens)


def episode_worst_case_usd(
    registry: Registry, profile: RouterProfile, settings: EpisodeSettings, body: dict[str, Any]
) -> float:
    """The most one episode request (with ``settings``, its resolved settings) can cost."""
    limits, caps = profile.limits, settings.caps
    turns = limits.max_routes + 1
    policy = turns * profile.policy.pricing.cost_usd(
        limits.max_context_tokens, settings.params.max_tokens
    )
    query_tokens = worst_case_prompt_tokens(render_upstream_prompt("")) + limits.max_turn_tokens
    per_route = max(
        (
            model.pricing.cost_usd(query_tokens, limits.upstream_max_tokens)
            for model in registry.pool(profile)
        ),
        default=0.0,
    )
    routes = limits.max_routes
    if caps.max_upstream_calls is not None:
        routes = min(routes, caps.max_upstream_calls)
    upstream = routes * per_route
    fallback = None if profile.fallback is None else registry.model(profile.fallback.model)
    if fallback is not None:
        upstream += chat_worst_case_usd(fallback, body)
    if caps.max_cost_usd is not None:
        upstream = min(upstream, caps.max_cost_usd)
    return policy + upstream


def hold_s(*bounds: float | None) -> float:
    """How long a reservation holds when never settled: the request's time bounds (an
    unbounded one counts :data:`UNBOUNDED_S`) plus a margin."""
    return sum(UNBOUNDED_S if bound is None else bound for bound in bounds) + HOLD_MARGIN_S


def passthrough_worst_case_usd(model: ModelSpec, body: dict[str, Any]) -> float:
    """The most one passthrough request to ``model`` can cost."""
    return chat_worst_case_usd(model, body)
