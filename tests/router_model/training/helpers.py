"""Fakes for the rollout core: a toy-tokenizer adapter and scripted token samplers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from router_model.episode.engine import GenerationParams
from router_model.training.engine import SampledTokens
from tests.fakes.toy_tokenizer import EOS_ID, ToyTokenizer

QWEN = "Qwen2.5-7B-Instruct"
LLAMA70 = "LLaMA-3.1-70B-Instruct"


def route(model: str, query: str) -> str:
    return f"<think>I should ask {model}.</think>\n<search> {model}:{query} </search>"


def answer(text: str) -> str:
    return f"<think>Now I know.</think>\n<answer> {text} </answer>"


class ToyRolloutTokenizer:
    """:class:`~router_model.training.engine.RolloutTokenizer` over the toy tokenizer."""

    def __init__(self, toy: ToyTokenizer | None = None) -> None:
        self.toy = toy or ToyTokenizer()

    @property
    def special_ids(self) -> frozenset[int]:
        return self.toy.special_ids

    def chat_prompt_ids(self, user_message: str) -> list[int]:
        text = self.toy.apply_chat_template(
            [{"role": "user", "content": user_message}], add_generation_prompt=True
        )
        return self.toy.encode(text)

    def encode(self, text: str) -> list[int]:
        return self.toy.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.toy.decode(ids, skip_special_tokens=True)


def _sample(
    toy: ToyTokenizer, text: str, stops: Sequence[str], max_tokens: int
) -> tuple[list[int], str]:
    """Emit ``text`` token by token then EOS, stopping after a stop string (kept)."""
    ids: list[int] = []
    produced = ""
    for token in [*toy.encode(text), EOS_ID]:
        if len(ids) >= max_tokens:
            return ids, "length"
        ids.append(token)
        if token == EOS_ID:
            return ids, "stop"
        produced += toy.decode([token])
        if any(stop in produced for stop in stops):
            return ids, "stop"
    return ids, "stop"


def fake_logprob(index: int) -> float:
    return -0.01 * (index + 1)


@dataclass
class ScriptedSampler:
    """A TokenGenerator: the next scripted turn each call (or a function of the prompt)."""

    tokenizer: ToyRolloutTokenizer
    script: Sequence[str] | Callable[[str], str]
    calls: list[tuple[list[int], GenerationParams]] = field(default_factory=list)

    async def generate_ids(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> SampledTokens:
        self.calls.append((list(prompt_ids), params))
        if callable(self.script):
            text = self.script(self.tokenizer.toy.decode(prompt_ids))
        else:
            text = self.script[min(len(self.calls) - 1, len(self.script) - 1)]
        ids, finish = _sample(self.tokenizer.toy, text, params.stop, params.max_tokens)
        return SampledTokens(ids, [fake_logprob(i) for i in range(len(ids))], finish)  # type: ignore[arg-type]


@dataclass
class FakeTokenOutput:
    token_ids: list[int]
    log_probs: list[float] | None = None
    stop_reason: str | None = "completed"
    extra_fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeServerManager:
    """veRL's ``LLMServerClient.generate`` as the agent loop calls it, scripted per call."""

    tokenizer: ToyRolloutTokenizer
    script: Sequence[str]
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def generate(
        self,
        request_id: str,
        *,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        **kwargs: Any,
    ) -> FakeTokenOutput:
        self.calls.append(
            {
                "request_id": request_id,
                "prompt_ids": list(prompt_ids),
                "sampling_params": dict(sampling_params),
            }
        )
        text = self.script[min(len(self.calls) - 1, len(self.script) - 1)]
        ids, _ = _sample(
            self.tokenizer.toy, text, sampling_params.get("stop", []), sampling_params["max_tokens"]
        )
        logprobs = (
            [fake_logprob(i) for i in range(len(ids))] if sampling_params.get("logprobs") else None
        )
        return FakeTokenOutput(ids, logprobs)
