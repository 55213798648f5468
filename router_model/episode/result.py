"""What one finished episode hands back."""

from __future__ import annotations

from dataclasses import dataclass

from router_model.episode.context import PolicyContext
from router_model.episode.engine import FinishReason
from router_model.episode.trace import Outcome, RouterTrace
from router_model.usage import Usage


@dataclass(frozen=True)
class EpisodeResult:
    """The answer, the trace and the token context of one episode.

    ``answer_text`` is the stripped content of the policy's own ``<answer>`` (cut at the
    first client stop string, if any); "" when the outcome is not ``answer``.
    ``finish_reason`` is "stop" when the policy answered, "length" otherwise (turn
    budget, token budget or deadline used up; see ``trace.outcome``).
    """

    answer_text: str
    finish_reason: FinishReason
    trace: RouterTrace
    context: PolicyContext
    usage: Usage
    """Tokens of every call the episode made: policy turns plus upstream routes."""

    @property
    def outcome(self) -> Outcome:
        return self.trace.outcome
