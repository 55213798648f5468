"""A registry model's enforced limits: per-minute requests/tokens, and its context length.

The per-minute limits are checked by a :class:`ModelLimiter` before a call is sent: it counts
the call and its estimated tokens (prompt estimate + ``max_tokens``) in the model's current
minute, or refuses (until the minute ends); after the call the estimate is corrected with the
real tokens. The gateway's is ``server.operations.model_limits.ModelRateLimits``: the shared
store's ``acquire_model_capacity`` (every replica counts in the same minute; the memory store
for one process). The pool depends only on this protocol.

Prompt tokens are estimated before the call at about 4 UTF-8 bytes a token
(:func:`router_model.episode.turns.estimated_prompt_tokens`; a passthrough's messages are
measured as their JSON, which adds a little for the chat template). That is right for English
with common tokenizers and errs low for dense text (code, CJK): the gateway refuses only what
is clearly too long for ``context_tokens``, and leaves borderline prompts to the upstream's own
verdict, rather than refusing requests that would fit.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import orjson

from router_model.episode.turns import estimated_prompt_tokens
from router_model.registry import ModelSpec
from server.upstream.errors import UpstreamContextTooLongError, UpstreamRateLimitedError


class CapacityTicket(Protocol):
    """The answer for one call."""

    @property
    def allowed(self) -> bool: ...

    @property
    def retry_after_s(self) -> int:
        """When refused: seconds until the minute that refused it ends."""
        ...


TicketT = TypeVar("TicketT", bound=CapacityTicket)


class ModelLimiter(Protocol[TicketT]):
    async def acquire(self, model: ModelSpec, tokens_estimate: int) -> TicketT:
        """May a call to ``model`` of about ``tokens_estimate`` tokens go ahead now?
        Never raises."""
        ...

    async def finished(self, ticket: TicketT, tokens: int) -> None:
        """The call of ``ticket`` used ``tokens`` in all; never raises."""
        ...


def has_rate_limits(model: ModelSpec) -> bool:
    limits = model.limits
    return limits.requests_per_minute is not None or limits.tokens_per_minute is not None


def context_overflow(model: ModelSpec, prompt_tokens: int, max_tokens: int) -> str | None:
    """Why a call does not fit the model's ``context_tokens`` (one line), or ``None``."""
    limit = model.limits.context_tokens
    if limit is None or prompt_tokens + max_tokens <= limit:
        return None
    return (
        f"{model.name}: the prompt (about {prompt_tokens} tokens) plus max_tokens {max_tokens} "
        f"does not fit its context of {limit} tokens"
    )


def _requested_max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class LimitGate:
    """The pool's side of the limits: refuse before a call, correct the count after it.
    Costs nothing (no estimate made) for a model without limits."""

    def __init__(self, limiter: ModelLimiter[Any] | None) -> None:
        self._limiter = limiter

    @staticmethod
    def applies(model: ModelSpec) -> bool:
        """Whether the model has limits to check (no: the call skips the gate entirely)."""
        return model.limits.context_tokens is not None or has_rate_limits(model)

    async def admit_route_call(
        self, model: ModelSpec, prompt: str, max_tokens: int
    ) -> tuple[CapacityTicket | None, int]:
        """(ticket, prompt estimate) of a sub-query the limits let through; raises
        :class:`UpstreamContextTooLongError` / :class:`UpstreamRateLimitedError` otherwise."""
        if model.limits.context_tokens is None and not has_rate_limits(model):
            return None, 0
        return await self._admit(model, estimated_prompt_tokens(prompt), max_tokens, max_tokens)

    async def admit_passthrough(
        self, model: ModelSpec, body: dict[str, Any], prompt_tokens: int | None
    ) -> tuple[CapacityTicket | None, int]:
        """The same for a passthrough request (``prompt_tokens``: the caller's estimate)."""
        if model.limits.context_tokens is None and not has_rate_limits(model):
            return None, 0
        if prompt_tokens is None:
            prompt_tokens = max(1, len(orjson.dumps(body.get("messages"))) // 4)
        max_tokens = _requested_max_tokens(body)
        budget = max_tokens or model.defaults.max_tokens
        return await self._admit(model, prompt_tokens, max_tokens or 0, budget)

    async def _admit(
        self, model: ModelSpec, prompt_tokens: int, max_tokens: int, budget: int
    ) -> tuple[CapacityTicket | None, int]:
        overflow = context_overflow(model, prompt_tokens, max_tokens)
        if overflow is not None:
            raise UpstreamContextTooLongError(overflow)
        if self._limiter is None or not has_rate_limits(model):
            return None, prompt_tokens
        ticket: CapacityTicket = await self._limiter.acquire(model, prompt_tokens + budget)
        if not ticket.allowed:
            raise UpstreamRateLimitedError(
                f"{model.name}: its per-minute request or token limit is reached; retry in "
                f"{ticket.retry_after_s} s",
                retry_after_s=float(ticket.retry_after_s),
            )
        return ticket, prompt_tokens

    async def finished(self, ticket: CapacityTicket | None, tokens: int) -> None:
        if ticket is not None and self._limiter is not None and ticket.allowed:
            await self._limiter.finished(ticket, tokens)
