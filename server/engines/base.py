"""The policy-engine interface the episode loop depends on, its value types and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from router_model.protocol.tags import ANSWER_CLOSE, SEARCH_CLOSE

FinishReason = Literal["stop", "length"]

ACTION_STOPS: tuple[str, ...] = (SEARCH_CLOSE, ANSWER_CLOSE)
"""Stop strings every policy turn uses: equivalent to the reference's post-hoc cut."""


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings of one policy turn.

    ``stop`` always contains :data:`ACTION_STOPS` (added when missing), and the stop
    string is kept in the output so the turn text ends with its closing tag.
    ``grammar`` is an engine-specific grammar (vLLM ``structured_outputs.grammar``,
    llama.cpp GBNF) constraining the turn; None means unconstrained.
    """

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ACTION_STOPS
    include_stop_str_in_output: bool = True
    grammar: str | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {self.max_tokens}")
        merged = tuple(dict.fromkeys((*ACTION_STOPS, *(s for s in self.stop if s))))
        object.__setattr__(self, "stop", merged)

    def completion_fields(self) -> dict[str, Any]:
        """These settings as ``/v1/completions`` fields both engines' servers read alike (the
        grammar's field differs: each engine adds it)."""
        fields: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": list(self.stop),
            "include_stop_str_in_output": self.include_stop_str_in_output,
        }
        if self.seed is not None:
            fields["seed"] = self.seed
        return fields


@dataclass(frozen=True)
class Generation:
    """A whole policy turn as the engine returned it (special tokens skipped).

    ``cached_tokens``: how many prompt tokens the engine reused from its prefix cache
    instead of prefilling them (None when the engine does not say).
    """

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int | None = None


@dataclass(frozen=True)
class GenerationChunk:
    """One piece of a streamed turn.

    Text chunks have ``finish_reason`` None. The last chunk of a stream is the only one
    with ``finish_reason`` set; it carries the usage (its ``text`` may be empty), and
    ``cached_tokens`` as :class:`Generation` does.
    """

    text: str
    finish_reason: FinishReason | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None

    @property
    def is_final(self) -> bool:
        return self.finish_reason is not None


class EngineError(Exception):
    """The policy engine answered, but not usefully (4xx, malformed reply): a gateway 502."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class EngineUnavailable(EngineError):
    """The engine cannot be reached or is failing (connect error, 5xx, timeout).

    The gateway answers 504 when ``timed_out`` and 503 otherwise.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, timed_out: bool = False
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.timed_out = timed_out


class PolicyEngine(Protocol):
    """Tokenization and generation for the router policy; see :mod:`server.engines`."""

    async def chat_prompt_ids(self, user_message: str) -> list[int]:
        """The checkpoint's chat template applied to one user message, with the
        generation prompt, tokenized by the engine."""
        ...

    async def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` with no special tokens added."""
        ...

    async def detokenize(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (used to show an observation cut to its token cap)."""
        ...

    async def generate(self, prompt_ids: Sequence[int], params: GenerationParams) -> Generation:
        """Continue the token-id prompt ``prompt_ids``."""
        ...

    def stream_generate(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> AsyncIterator[GenerationChunk]:
        """Like :meth:`generate`, as text deltas; the final chunk has finish reason and usage."""
        ...

    async def ready(self) -> bool:
        """Whether the engine is up and serving (never raises)."""
        ...

    async def aclose(self) -> None:
        """Release what the engine owns (never a shared HTTP client it was given)."""
        ...
