"""A token-in/token-out :class:`~router_model.episode.engine.PolicyEngine` for training rollouts.

The episode loop (``router_model.episode.EpisodeRunner``) only ever talks to a ``PolicyEngine``.
For training, generation is done by the RL framework's own sampler (veRL's server manager,
or the model being trained in-process for TRL): :class:`TokenEngine` adapts any
:class:`TokenGenerator` (prompt ids in, sampled ids and log-probs out) and a
:class:`RolloutTokenizer` to that interface, and records every sampled turn so the rollout
can attach the sampler's log-probs to the context's token ids.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from router_model.episode.engine import FinishReason, Generation, GenerationChunk, GenerationParams


@dataclass(frozen=True)
class SampledTokens:
    """What a sampler returned for one turn: the ids (EOS included when sampled)."""

    ids: list[int]
    logprobs: list[float] | None
    finish_reason: FinishReason


class TokenGenerator(Protocol):
    """Continues a token-id prompt; honours ``params.stop`` (kept in the output),
    ``params.max_tokens``, and the sampling settings it is configured with."""

    async def generate_ids(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> SampledTokens:
        """Sample one turn after ``prompt_ids``."""
        ...


class RolloutTokenizer(Protocol):
    """The policy checkpoint's tokenizer, as the rollout needs it."""

    @property
    def special_ids(self) -> frozenset[int]:
        """Ids of special tokens (never part of a turn's text)."""
        ...

    def chat_prompt_ids(self, user_message: str) -> list[int]:
        """The chat template applied to one user message, with the generation prompt."""
        ...

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` with no special tokens added."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, special tokens skipped."""
        ...


class HFTokenizer:
    """:class:`RolloutTokenizer` over a Hugging Face tokenizer (``PreTrainedTokenizerBase``)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._special = frozenset(int(i) for i in tokenizer.all_special_ids)

    @property
    def special_ids(self) -> frozenset[int]:
        return self._special

    def chat_prompt_ids(self, user_message: str) -> list[int]:
        text = self._tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message}], add_generation_prompt=True, tokenize=False
        )
        return [int(i) for i in self._tokenizer.encode(text, add_special_tokens=False)]

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in self._tokenizer.encode(text, add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=True))


@dataclass(frozen=True)
class SampledTurn:
    """One generation as sampled, and its text (special tokens skipped)."""

    ids: list[int]
    logprobs: list[float] | None
    text: str


class TokenEngine:
    """A :class:`~router_model.episode.engine.PolicyEngine` for ONE trajectory (it records its
    turns)."""

    def __init__(self, generator: TokenGenerator, tokenizer: RolloutTokenizer) -> None:
        self._generator = generator
        self._tokenizer = tokenizer
        self.sampled: list[SampledTurn] = []

    async def chat_prompt_ids(self, user_message: str) -> list[int]:
        return self._tokenizer.chat_prompt_ids(user_message)

    async def tokenize(self, text: str) -> list[int]:
        return self._tokenizer.encode(text)

    async def detokenize(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(ids)

    async def generate(self, prompt_ids: Sequence[int], params: GenerationParams) -> Generation:
        sampled = await self._generator.generate_ids(prompt_ids, params)
        text = self._tokenizer.decode(sampled.ids)
        self.sampled.append(SampledTurn(list(sampled.ids), sampled.logprobs, text))
        return Generation(
            text=text,
            finish_reason=sampled.finish_reason,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(sampled.ids),
        )

    async def stream_generate(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> AsyncIterator[GenerationChunk]:
        generation = await self.generate(prompt_ids, params)
        yield GenerationChunk(text=generation.text)
        yield GenerationChunk(
            text="",
            finish_reason=generation.finish_reason,
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
        )

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None

    def turn_logprobs(self, turn_ids: Sequence[Sequence[int]]) -> list[list[float]] | None:
        """The sampler's log-probs for the context's turn ids, turn by turn.

        The loop re-tokenizes each cut turn on its own (as the reference did). Where that
        gives back exactly the sampled ids (special tokens such as EOS dropped), the sampled
        log-probs belong to them; when any turn differs (a turn cut after its stop string,
        a non-canonical tokenization) there is no exact match and None is returned.
        """
        if len(turn_ids) != len(self.sampled):
            return None
        out: list[list[float]] = []
        special = self._tokenizer.special_ids
        for ids, sampled in zip(turn_ids, self.sampled, strict=True):
            if sampled.logprobs is None or len(sampled.logprobs) != len(sampled.ids):
                return None
            kept = [(i, lp) for i, lp in zip(sampled.ids, sampled.logprobs, strict=True)]
            while kept and kept[-1][0] in special:
                kept.pop()
            if [i for i, _ in kept] != list(ids):
                return None
            out.append([lp for _, lp in kept])
        return out
