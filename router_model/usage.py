"""Token usage: THE one type for what a call or a whole request consumed.

An upstream reply's ``usage`` object, a passthrough stream's usage chunk and an episode's sums
are all :class:`Usage`. ``cached_tokens`` is the part of ``prompt_tokens`` the server reused
from its prefix cache (``usage.prompt_tokens_details.cached_tokens`` as vLLM, llama.cpp and
OpenAI report it); a model's pricing may bill those at a lower price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    """Of ``prompt_tokens``, those served from the server's prefix cache (0: none or unknown)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_json(cls, value: Any) -> Usage | None:
        """``usage`` of an OpenAI response, or ``None`` when absent or unusable."""
        if not isinstance(value, dict):
            return None
        prompt = _count(value.get("prompt_tokens"))
        completion = _count(value.get("completion_tokens"))
        if prompt is None and completion is None:
            return None
        details = value.get("prompt_tokens_details")
        cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else None
        return cls(
            prompt_tokens=prompt or 0,
            completion_tokens=completion or 0,
            cached_tokens=min(cached or 0, prompt or 0),
        )


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
