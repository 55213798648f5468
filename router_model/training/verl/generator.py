"""Sampling through veRL's LLM server manager, token-in/token-out, one turn per call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from router_model.episode.engine import FinishReason, GenerationParams
from router_model.training.engine import SampledTokens

# What the loop decides per turn; veRL's own sampling params (temperature, top_p, top_k,
# logprobs; greedy for validation) are kept as given.
_TURN_KEYS = ("max_tokens", "stop", "include_stop_str_in_output")


class ServerManager(Protocol):
    """The part of veRL's ``LLMServerClient`` the rollout uses."""

    async def generate(
        self,
        request_id: str,
        *,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        **kwargs: Any,
    ) -> Any:
        """Returns a ``TokenOutput`` (``token_ids``, ``log_probs``, ``stop_reason``)."""
        ...


class VerlServerGenerator:
    """A :class:`~router_model.training.engine.TokenGenerator` over veRL's server manager.

    Every turn of one trajectory uses the same ``request_id`` (veRL's sticky session: the
    turns hit the same vLLM replica and reuse its prefix cache). Per turn, the loop's token
    limit and stop strings (``</search>``, ``</answer>``, kept in the output) are added to
    veRL's sampling params.
    """

    def __init__(
        self, server_manager: ServerManager, sampling_params: Mapping[str, Any], request_id: str
    ) -> None:
        self._server = server_manager
        self._base = {k: v for k, v in sampling_params.items() if k not in _TURN_KEYS}
        self._request_id = request_id

    def sampling_params(self, params: GenerationParams) -> dict[str, Any]:
        return {
            **self._base,
            "max_tokens": params.max_tokens,
            "stop": list(params.stop),
            "include_stop_str_in_output": params.include_stop_str_in_output,
        }

    async def generate_ids(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> SampledTokens:
        output = await self._server.generate(
            request_id=self._request_id,
            prompt_ids=list(prompt_ids),
            sampling_params=self.sampling_params(params),
        )
        ids = [int(i) for i in output.token_ids]
        raw_logprobs = getattr(output, "log_probs", None)
        logprobs = [float(x) for x in raw_logprobs] if raw_logprobs else None
        finish: FinishReason = "length" if len(ids) >= params.max_tokens else "stop"
        return SampledTokens(ids=ids, logprobs=logprobs, finish_reason=finish)
