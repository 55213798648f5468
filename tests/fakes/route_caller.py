"""A fake :class:`~router_model.episode.route.RouteCaller`: scripted replies per registry model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from router_model.episode.route import UpstreamReply, UpstreamStatus
from router_model.registry import ModelSpec


@dataclass(frozen=True)
class Failure:
    """A scripted upstream failure (returned as a failed reply, never raised)."""

    status: UpstreamStatus = "http_error"
    error: str = "HTTP 500: scripted failure"


@dataclass(frozen=True)
class RouteCallRecord:
    model: str
    prompt: str
    max_tokens: int


Reply = str | Failure | UpstreamReply | Callable[[str], str]


def count_tokens(text: str) -> int:
    """The fake's token count: whitespace-separated words."""
    return len(text.split())


@dataclass
class FakeRouteCaller:
    """``replies`` maps a registry model name to its reply (text, callable, failure, or a
    ready ``UpstreamReply``); a model missing from it fails with ``http_error``.

    Token counts are word counts of the prompt and of the reply; the cost uses the
    model's registry pricing. ``delay_s`` is waited before every reply.
    """

    replies: Mapping[str, Reply] = field(default_factory=dict)
    delay_s: float = 0.0
    calls: list[RouteCallRecord] = field(default_factory=list)

    async def route_call(self, model: ModelSpec, prompt: str, *, max_tokens: int) -> UpstreamReply:
        self.calls.append(RouteCallRecord(model.name, prompt, max_tokens))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        reply = self.replies.get(model.name, Failure())
        if isinstance(reply, UpstreamReply):
            return reply
        if isinstance(reply, Failure):
            return UpstreamReply(
                model=model.name, status=reply.status, text=None, error=reply.error
            )
        text = reply(prompt) if callable(reply) else reply
        prompt_tokens, completion_tokens = count_tokens(prompt), count_tokens(text)
        return UpstreamReply(
            model=model.name,
            status="ok",
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=model.pricing.cost_usd(prompt_tokens, completion_tokens),
            latency_s=self.delay_s,
        )
