"""The policy's token context, laid out exactly as in training (spec section 1).

``prompt_ids`` (chat template applied to the filled policy template by the engine), then
for each turn the ids of the cut turn text and the ids of its observation, each
tokenized on its own and concatenated: never the concatenated string re-tokenized. The
ids are authoritative; piece texts are for traces and rewards. The engine prompt is the
whole sequence left-truncated to ``max_context_tokens``. ``response_ids`` and
``response_mask`` (1 = policy token, 0 = observation token) are what training needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from router_model.protocol.observation import OBSERVATION_MAX_TOKENS

PieceKind = Literal["turn", "observation"]


@dataclass(frozen=True)
class ContextPiece:
    """One turn or observation as it entered the context."""

    kind: PieceKind
    text: str
    ids: tuple[int, ...]
    truncated: bool = False

    @property
    def mask_value(self) -> int:
        return 1 if self.kind == "turn" else 0


class PolicyContext:
    """The growing token context of one episode."""

    def __init__(
        self,
        prompt_ids: Sequence[int],
        *,
        max_context_tokens: int,
        max_observation_tokens: int = OBSERVATION_MAX_TOKENS,
        prompt_text: str = "",
    ) -> None:
        if max_context_tokens < 1 or max_observation_tokens < 0:
            raise ValueError("max_context_tokens must be positive, max_observation_tokens >= 0")
        self._prompt_ids = tuple(prompt_ids)
        self._prompt_text = prompt_text
        self._max_context_tokens = max_context_tokens
        self._max_observation_tokens = max_observation_tokens
        self._pieces: list[ContextPiece] = []

    @property
    def prompt_ids(self) -> list[int]:
        return list(self._prompt_ids)

    @property
    def prompt_text(self) -> str:
        """The user message the chat template was applied to (informational)."""
        return self._prompt_text

    @property
    def pieces(self) -> tuple[ContextPiece, ...]:
        return tuple(self._pieces)

    @property
    def max_context_tokens(self) -> int:
        return self._max_context_tokens

    def append_turn(self, text: str, ids: Sequence[int]) -> ContextPiece:
        """A policy turn (already cut) and its ids, tokenized on their own."""
        piece = ContextPiece("turn", text, tuple(ids))
        self._pieces.append(piece)
        return piece

    def append_observation(self, text: str, ids: Sequence[int]) -> ContextPiece:
        """An observation; its ids are cut to ``max_observation_tokens``.

        When the ids are cut, ``text`` should already be the text of the kept ids (the
        loop detokenizes them); the piece is marked ``truncated`` either way.
        """
        kept = tuple(ids[: self._max_observation_tokens])
        piece = ContextPiece("observation", text, kept, truncated=len(kept) < len(ids))
        self._pieces.append(piece)
        return piece

    @property
    def response_ids(self) -> list[int]:
        """All turn and observation ids after the prompt, in order (never truncated)."""
        return [i for piece in self._pieces for i in piece.ids]

    @property
    def response_mask(self) -> list[int]:
        """Per response id: 1 for policy tokens, 0 for observation tokens."""
        return [piece.mask_value for piece in self._pieces for _ in piece.ids]

    @property
    def response_text(self) -> str:
        """The response side as text (what the training rewards read)."""
        return "".join(piece.text for piece in self._pieces)

    @property
    def turn_texts(self) -> list[str]:
        """The policy's own turns only (where an answer may be taken from)."""
        return [piece.text for piece in self._pieces if piece.kind == "turn"]

    @property
    def total_tokens(self) -> int:
        return len(self._prompt_ids) + sum(len(piece.ids) for piece in self._pieces)

    @property
    def is_truncated(self) -> bool:
        """Whether :meth:`engine_prompt` drops tokens on the left."""
        return self.total_tokens > self._max_context_tokens

    def engine_prompt(self) -> list[int]:
        """Prompt ids plus response ids, keeping the most recent ``max_context_tokens``."""
        ids = [*self._prompt_ids, *self.response_ids]
        return ids[-self._max_context_tokens :]
