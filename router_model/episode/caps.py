"""Per-request caps on what an episode may spend: money and upstream calls.

A profile's ``limits.max_cost_usd`` and ``limits.max_upstream_calls`` bound one request; a
client may lower them (never raise them) for its own request. Before each route call the loop
asks :meth:`RequestCaps.refusal` whether the call's *worst case* still fits in what is left:
the cost of its prompt (estimated from the rendered upstream prompt, see
:func:`worst_case_prompt_tokens`) plus ``upstream_max_tokens`` completion tokens at the model's
prices. A route that would not fit is not executed: the policy gets the ``None`` observation
(as for a failed call) and the step's status says which cap refused it. The same check guards
a profile's fallback call (the gateway's).

Retries happen inside one call (the upstream pool's bounded retry budget): they are counted
after the call, so a call admitted with one call left may use its retries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from router_model.episode.trace import UPSTREAM_CALL_CAP, UPSTREAM_COST_CAP
from router_model.registry import Pricing

BYTES_PER_TOKEN_WORST = 3
"""Worst-case estimate of a prompt's tokens: one per 3 UTF-8 bytes (English text with common
tokenizers averages about 4; the cap and the budget reservation must not come out short)."""
FRAMING_TOKENS = 16
"""The chat template's framing around a prompt (role markers, special tokens)."""
_EPSILON_USD = 1e-12  # float sums of prices must not refuse a call that fits exactly


def worst_case_prompt_tokens(text: str) -> int:
    """An upper estimate of the prompt tokens of ``text`` sent as one chat message."""
    return math.ceil(len(text.encode()) / BYTES_PER_TOKEN_WORST) + FRAMING_TOKENS


def worst_case_call_usd(pricing: Pricing, prompt: str, max_tokens: int) -> float:
    """The most one call with this prompt and completion cap should cost at ``pricing``."""
    return pricing.cost_usd(worst_case_prompt_tokens(prompt), max_tokens)


def _lowest(profile: float | None, client: float | None) -> float | None:
    if client is None or client < 0:
        return profile
    return client if profile is None else min(profile, client)


@dataclass(frozen=True)
class RequestCaps:
    """The caps of one request; None = no cap."""

    max_cost_usd: float | None = None
    max_upstream_calls: int | None = None

    def lowered(
        self, max_cost_usd: float | None = None, max_upstream_calls: int | None = None
    ) -> RequestCaps:
        """These caps with the client's values where they are lower (a client can only lower
        a cap; a negative value is ignored)."""
        calls = _lowest(self.max_upstream_calls, max_upstream_calls)
        return RequestCaps(
            max_cost_usd=_lowest(self.max_cost_usd, max_cost_usd),
            max_upstream_calls=None if calls is None else int(calls),
        )

    def refusal(self, *, spent_usd: float, calls_made: int, worst_case_usd: float) -> str | None:
        """Which cap one more call would pass (``call_cap``, then ``cost_cap``), or None when
        the request has already spent ``spent_usd`` and made ``calls_made`` calls."""
        if self.max_upstream_calls is not None and calls_made + 1 > self.max_upstream_calls:
            return UPSTREAM_CALL_CAP
        cost_cap = self.max_cost_usd
        if cost_cap is not None and spent_usd + worst_case_usd > cost_cap + _EPSILON_USD:
            return UPSTREAM_COST_CAP
        return None
