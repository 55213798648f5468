"""Sampling turns from the model being trained, in-process (TRL on CPU or one GPU)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from router_model.episode.engine import FinishReason, GenerationParams
from router_model.training.engine import SampledTokens


class _StopOnText:
    """Stops when the generated text contains a stop string (decodes only the recent tail).

    Cheaper than transformers' ``stop_strings``, which rebuilds vocabulary tables on every
    ``generate`` call.
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_len: int) -> None:
        self._tokenizer = tokenizer
        self._stops = tuple(s for s in stops if s)
        self._prompt_len = prompt_len
        self._tail = 8 + max((len(s) for s in self._stops), default=0)

    def __call__(self, input_ids: Any, scores: Any, **_: Any) -> Any:
        import torch

        generated = input_ids[0, self._prompt_len :][-self._tail :].tolist()
        text = self._tokenizer.decode(generated, skip_special_tokens=True)
        done = any(stop in text for stop in self._stops)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def _criteria(stop: _StopOnText) -> Any:
    from transformers import StoppingCriteriaList

    return StoppingCriteriaList([stop])


class TransformersSampler:
    """A :class:`~router_model.training.engine.TokenGenerator` over ``model.generate``.

    Token ids in, sampled ids and their log-probs (under the processed distribution:
    temperature and top-p applied) out. Stop strings end a turn and stay in it. Calls are
    serialized (one model) and run in a worker thread so upstream calls of other episodes
    proceed meanwhile.
    """

    def __init__(
        self, model: Any, tokenizer: Any, *, temperature: float = 1.0, top_p: float = 0.95
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._temperature = temperature
        self._top_p = top_p
        self._lock = asyncio.Lock()

    async def generate_ids(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> SampledTokens:
        async with self._lock:
            return await asyncio.to_thread(self._generate, list(prompt_ids), params)

    def _generate(self, prompt_ids: list[int], params: GenerationParams) -> SampledTokens:
        import torch

        model = self._model
        was_training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
            sample = self._temperature > 0
            options: dict[str, Any] = {"do_sample": sample}
            if sample:
                options.update(temperature=self._temperature, top_p=self._top_p, top_k=0)
            pad_id = self._tokenizer.pad_token_id
            stop = _StopOnText(self._tokenizer, params.stop, len(prompt_ids))
            with torch.no_grad():
                out = model.generate(
                    input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    max_new_tokens=params.max_tokens,
                    stopping_criteria=_criteria(stop),
                    return_dict_in_generate=True,
                    output_scores=True,
                    pad_token_id=pad_id if pad_id is not None else self._tokenizer.eos_token_id,
                    **options,
                )
        finally:
            if was_training:
                model.train()
        new = out.sequences[0, len(prompt_ids) :]
        ids = [int(i) for i in new.tolist()]
        if not ids:
            return SampledTokens(ids=[], logprobs=[], finish_reason="stop")
        scores = torch.stack(list(out.scores), dim=1)[0].float()
        logprobs = torch.log_softmax(scores, dim=-1).gather(-1, new[: scores.shape[0], None])[:, 0]
        finish: FinishReason = "length" if len(ids) >= params.max_tokens else "stop"
        return SampledTokens(
            ids=ids, logprobs=[float(x) for x in logprobs.tolist()], finish_reason=finish
        )
