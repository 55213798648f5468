"""One policy turn while it is played, and the trace step it becomes."""

from __future__ import annotations

from dataclasses import dataclass

from router_model.episode.engine import FinishReason
from router_model.episode.route import UpstreamReply
from router_model.episode.trace import REPLY_EXCERPT_CHARS, RouteStep, StepAction, extract_think
from router_model.protocol.tags import ANSWER_CLOSE, SEARCH_CLOSE
from router_model.protocol.turn import NO_ACTION, Action, ActionKind


@dataclass
class TurnState:
    """What is known of one turn so far; :meth:`step` turns it into its trace step.

    Tokens are the engine's and the upstream's own figures, except when a call was cut off
    before they arrived (client gone, deadline, failure): then the prompt tokens sent and one
    token per chunk received are counted, and ``usage_estimated`` says so.
    """

    index: int
    final: bool
    started_ms: float = 0.0
    text: str = ""
    finish_reason: FinishReason = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    replica: str | None = None
    failover_from: tuple[str, ...] = ()
    policy_cost_usd: float = 0.0
    answer_text: str = ""
    action: Action = NO_ACTION
    written_model: str | None = None
    model: str | None = None
    query: str | None = None
    reply: UpstreamReply | None = None
    upstream_status: str | None = None
    upstream_started_ms: float | None = None
    upstream_prompt_tokens: int = 0
    upstream_completion_tokens: int = 0
    upstream_cost_usd: float = 0.0
    usage_estimated: bool = False
    policy_wait_s: float = 0.0
    upstream_wait_s: float = 0.0
    generated: bool = False
    route_started: bool = False
    recorded: bool = False

    def step(self) -> RouteStep:
        reply = self.reply
        excerpt = reply.text[:REPLY_EXCERPT_CHARS] if reply and reply.text is not None else None
        return RouteStep(
            index=self.index,
            think=extract_think(self.text),
            action=step_action(self.action),
            written_model=self.written_model,
            model=self.model,
            query=self.query,
            reply_excerpt=excerpt,
            upstream_status=self.upstream_status,
            upstream_error=reply.error if reply is not None else None,
            upstream_attempts=reply.attempts if reply is not None else 0,
            deployment=reply.deployment if reply is not None else None,
            cached=reply is not None and reply.status == "cached",
            shared=reply is not None and reply.shared,
            policy_prompt_tokens=self.prompt_tokens,
            policy_completion_tokens=self.completion_tokens,
            cached_tokens=self.cached_tokens,
            upstream_prompt_tokens=self.upstream_prompt_tokens,
            upstream_completion_tokens=self.upstream_completion_tokens,
            usage_estimated=self.usage_estimated,
            cost_usd=self.policy_cost_usd + self.upstream_cost_usd,
            policy_cost_usd=self.policy_cost_usd,
            upstream_cost_usd=self.upstream_cost_usd,
            policy_latency_ms=self.policy_wait_s * 1000,
            upstream_latency_ms=self.upstream_wait_s * 1000,
            started_ms=self.started_ms,
            upstream_started_ms=self.upstream_started_ms,
            replica=self.replica,
            failover_from=list(self.failover_from),
        )


def step_action(action: Action) -> StepAction:
    if action.kind is ActionKind.ANSWER:
        return "answer"
    if action.kind is ActionKind.SEARCH:
        return "route"
    return "none" if action.kind is None else "invalid"


def visible_prefix(text: str) -> str:
    """``text`` up to the end of its first closing action tag (the turn ends there)."""
    ends = [text.find(tag) + len(tag) for tag in (SEARCH_CLOSE, ANSWER_CLOSE) if tag in text]
    return text[: min(ends)] if ends else text


def estimated_prompt_tokens(prompt: str) -> int:
    """A cut-off upstream call's prompt tokens, when the upstream never said: about 4 bytes a
    token, as for English text with common tokenizers."""
    return max(1, len(prompt.encode()) // 4)
