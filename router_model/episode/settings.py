"""What one request may change about an episode, and the effective settings it runs with."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from router_model.episode.caps import RequestCaps
from router_model.episode.engine import GenerationParams
from router_model.registry import RouterProfile

MAX_CLIENT_STOPS = 4
_MIN_TOP_P = 1e-3
_MAX_TEMPERATURE = 2.0


@dataclass(frozen=True)
class PolicyOverrides:
    """What a client may change for one request; clamped by :func:`resolve_settings`."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    timeout_s: float | None = None
    max_cost_usd: float | None = None
    max_upstream_calls: int | None = None


@dataclass(frozen=True)
class EpisodeSettings:
    """The effective settings of one request."""

    params: GenerationParams
    answer_stops: tuple[str, ...]
    deadline_s: float
    caps: RequestCaps = field(default_factory=RequestCaps)
    final_params: GenerationParams | None = None
    """The final turn's (where a route is not executed): an answer-only grammar for a
    grammar-constrained profile; ``None`` = the same as every turn."""

    def turn_params(self, final: bool) -> GenerationParams:
        return self.final_params if final and self.final_params is not None else self.params


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def resolve_settings(
    profile: RouterProfile,
    overrides: PolicyOverrides,
    *,
    grammar: str | None = None,
    final_grammar: str | None = None,
) -> EpisodeSettings:
    """Profile defaults, overridden by the client within the profile's limits.

    temperature ∈ [0, 2]; top_p ∈ [0.001, 1]; max_tokens (per turn) ∈ [1,
    ``max_turn_tokens``]; at most 4 non-empty stop strings; ``timeout_s`` can only
    shorten ``deadline_s``; ``max_cost_usd`` and ``max_upstream_calls`` can only lower the
    profile's caps (:mod:`router_model.episode.caps`).
    """
    decoding, limits = profile.decoding, profile.limits
    temperature = decoding.temperature if overrides.temperature is None else overrides.temperature
    top_p = decoding.top_p if overrides.top_p is None else overrides.top_p
    max_tokens = limits.max_turn_tokens
    if overrides.max_tokens is not None:
        max_tokens = int(_clamp(overrides.max_tokens, 1, limits.max_turn_tokens))
    deadline = limits.deadline_s
    if overrides.timeout_s is not None and overrides.timeout_s > 0:
        deadline = min(deadline, overrides.timeout_s)
    stops = tuple(dict.fromkeys(s for s in overrides.stop if s))[:MAX_CLIENT_STOPS]
    params = GenerationParams(
        max_tokens=max_tokens,
        temperature=_clamp(temperature, 0.0, _MAX_TEMPERATURE),
        top_p=_clamp(top_p, _MIN_TOP_P, 1.0),
        seed=decoding.seed if overrides.seed is None else overrides.seed,
        grammar=grammar,
    )
    caps = RequestCaps(limits.max_cost_usd, limits.max_upstream_calls).lowered(
        overrides.max_cost_usd, overrides.max_upstream_calls
    )
    final_params = None if final_grammar is None else replace(params, grammar=final_grammar)
    return EpisodeSettings(
        params=params, answer_stops=stops, deadline_s=deadline, caps=caps, final_params=final_params
    )
