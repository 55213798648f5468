"""The policy engine behind llama-cpp-python's server (``local_stack.llamacpp_server``).

The request and reply shapes of ``/v1/completions`` are OpenAI's, as with vLLM, so this
engine reuses :class:`~server.engines.vllm.VLLMEngine`'s generation and stream parsing
and changes what differs (see :mod:`server.engines` for the full list): the tokenize
endpoints, the grammar field, llama.cpp's non-neutral sampling defaults, and the
queueing (llama.cpp serves one request at a time).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any, cast

import httpx

from router_model.episode.engine import EngineError, GenerationChunk, GenerationParams
from server.engines.vllm import VLLMEngine

__all__ = ["LlamaCppEngine"]

_NEEDS_EXTENSIONS = (
    "the llama.cpp server lacks the token-id extensions; serve the policy with "
    "`python -m local_stack.llamacpp_server` (llama-cpp-python's server plus token-id "
    "prompts and chat tokenization)"
)

# llama-cpp-python's request defaults are not neutral (top_k 40, min_p 0.05,
# repeat_penalty 1.1); the policy was trained with plain temperature/top-p sampling.
_NEUTRAL_SAMPLING: dict[str, Any] = {
    "top_k": 0,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}


def _tokens(data: dict[str, Any], what: str) -> list[int]:
    value = data.get("tokens")
    if not isinstance(value, list) or not all(isinstance(i, int) for i in value):
        raise EngineError(f"policy engine {what}: malformed reply (no token id list)")
    return list(value)


class LlamaCppEngine(VLLMEngine):
    """:class:`~router_model.episode.engine.PolicyEngine` over llama-cpp-python's HTTP API.

    ``max_in_flight`` requests at a time are sent (default 1: the server runs one at a
    time anyway, and queueing here keeps the endpoint's read timeout a bound on the
    engine's own work rather than on the queue in front of it).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: httpx.Timeout | None = None,
        max_in_flight: int = 1,
    ) -> None:
        super().__init__(client, base_url=base_url, model=model, api_key=api_key, timeout=timeout)
        self._slots = asyncio.Semaphore(max_in_flight)

    async def _post(self, path: str, payload: dict[str, Any], what: str) -> dict[str, Any]:
        async with self._slots:
            try:
                return await super()._post(path, payload, what)
            except EngineError as exc:
                stock_server = (exc.status_code == 404 and path == "/extras/tokenize/chat") or (
                    exc.status_code == 422 and path == "/v1/completions" and "prompt" in str(exc)
                )
                if stock_server:
                    raise EngineError(
                        f"{exc}; {_NEEDS_EXTENSIONS}", status_code=exc.status_code
                    ) from exc
                raise

    async def chat_prompt_ids(self, user_message: str) -> list[int]:
        payload = {
            "model": self.model,
            "messages": [{"role": "user", "content": user_message}],
            "add_generation_prompt": True,
        }
        return _tokens(await self._post("/extras/tokenize/chat", payload, "chat tokenize"), "chat")

    async def tokenize(self, text: str) -> list[int]:
        if not text:
            return []
        payload = {"model": self.model, "input": text, "add_special": False}
        return _tokens(await self._post("/extras/tokenize", payload, "tokenize"), "tokenize")

    async def detokenize(self, ids: Sequence[int]) -> str:
        if not ids:
            return ""
        data = await self._post(
            "/extras/detokenize", {"model": self.model, "tokens": list(ids)}, "detokenize"
        )
        text = data.get("text")
        if not isinstance(text, str):
            raise EngineError("policy engine detokenize: malformed reply (no text)")
        return text

    def _completion_payload(
        self, prompt_ids: Sequence[int], params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "prompt": list(prompt_ids),
            **params.completion_fields(),
            **_NEUTRAL_SAMPLING,
            "stream": stream,
        }
        if params.grammar is not None:
            payload["grammar"] = params.grammar
        return payload

    async def stream_generate(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> AsyncIterator[GenerationChunk]:
        # VLLMEngine.stream_generate is an async generator: close it with the stream.
        stream = cast(
            AsyncGenerator[GenerationChunk, None], super().stream_generate(prompt_ids, params)
        )
        async with self._slots, aclosing(stream) as chunks:
            async for chunk in chunks:
                yield chunk
