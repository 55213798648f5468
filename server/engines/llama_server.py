"""The policy engine behind llama.cpp's own HTTP server, ``llama-server``.

FINDINGS_PLACEHOLDER
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import httpx

from server.engines.base import (
    EngineError,
    EngineUnavailable,
    FinishReason,
    Generation,
    GenerationChunk,
    GenerationParams,
)
from server.engines.vllm import VLLMEngine, _error_message, _status_error, _transport_error

__all__ = ["NEUTRAL_SAMPLING", "LlamaServerEngine"]

_SSE_DATA = "data:"

# Sampling is temperature then top-p, nothing else, as in training (vLLM/HF apply the
# temperature before top-p). ``samplers`` names the whole chain (a sampler not named is not
# used); the other fields are set to their neutral values as well, so that a server that
# ignored ``samplers`` would still sample the same way.
NEUTRAL_SAMPLING: dict[str, Any] = {
    "samplers": ["temperature", "top_p"],
    "top_k": 0,
    "min_p": 0.0,
    "typical_p": 1.0,
    "top_n_sigma": -1.0,
    "dynatemp_range": 0.0,
    "repeat_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "dry_multiplier": 0.0,
    "xtc_probability": 0.0,
    "mirostat": 0,
    "n_probs": 0,
}

_FINISH: dict[str, FinishReason] = {"eos": "stop", "word": "stop", "limit": "length"}


def _int_list(value: object, what: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(i, int) for i in value):
        raise EngineError(f"policy engine {what}: malformed reply (no token id list)")
    return list(value)


def _count(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _cached(data: dict[str, Any]) -> int | None:
    """Prompt tokens reused from the slot's cache: ``timings.cache_n``.

    (``tokens_cached`` is not that: it counts every token in the slot afterwards,
    prompt and completion.)"""
    timings = data.get("timings")
    return _count(timings, "cache_n") if isinstance(timings, dict) else None


def _finish(data: dict[str, Any], what: str) -> FinishReason:
    if data.get("truncated") is True:
        return "length"
    finish = _FINISH.get(str(data.get("stop_type")))
    if finish is None:
        raise EngineUnavailable(
            f"policy engine {what}: generation did not finish (stop_type {data.get('stop_type')!r})"
        )
    return finish


def _stop_suffix(data: dict[str, Any], params: GenerationParams) -> str:
    """The stop string llama-server cut off the text, when the turn keeps it."""
    word = data.get("stopping_word")
    if params.include_stop_str_in_output and data.get("stop_type") == "word":
        if not isinstance(word, str) or not word:
            raise EngineError("policy engine completion: stopped by a word but names none")
        return word
    return ""


class LlamaServerEngine(VLLMEngine):
    """:class:`~server.engines.base.PolicyEngine` over llama-server's native API.

    ``client`` is shared and never closed here; ``base_url`` is the registry endpoint's
    base (``http://host:port`` or ``.../v1``: the native endpoints are at the root).
    Requests are not queued here: llama-server has its own slots (``-np``) and queues
    what they cannot take.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        super().__init__(client, base_url=base_url, model=model, api_key=api_key, timeout=timeout)
        self._bos_prefix: tuple[int, ...] | None = None

    async def _chat_bos_prefix(self) -> tuple[int, ...]:
        """What :meth:`chat_prompt_ids` puts before the rendered template's ids (learnt once).

        llama.cpp cuts a leading BOS string off the rendered template when the model adds
        BOS on its own (its chat endpoints add it back when they tokenize); Hugging Face
        keeps the BOS the template wrote and adds none. So the BOS id goes back in front
        when the model adds BOS and the template writes it; otherwise nothing does.
        """
        if self._bos_prefix is None:
            props = await self._get("/props", "props")
            bos_text, template = props.get("bos_token"), props.get("chat_template")
            if not isinstance(template, str) or not template:
                raise EngineError("policy engine props: the model has no chat template")
            with_bos = await self._post(
                "/tokenize", {"content": "", "add_special": True}, "tokenize"
            )
            added = _int_list(with_bos.get("tokens"), "tokenize")
            writes_bos = "bos_token" in template or (
                isinstance(bos_text, str) and bool(bos_text) and bos_text in template
            )
            self._bos_prefix = tuple(added[:1]) if writes_bos else ()
        return self._bos_prefix

    async def _get(self, path: str, what: str) -> dict[str, Any]:
        try:
            response = await self._client.get(
                self._root + path, headers=self._headers, timeout=self._timeout
            )
        except httpx.TransportError as exc:
            raise _transport_error(exc, what) from exc
        if response.status_code >= 400:
            raise _status_error(response.status_code, response.content, what)
        try:
            data = response.json()
        except ValueError as exc:
            raise EngineError(f"policy engine {what}: reply is not JSON") from exc
        if not isinstance(data, dict):
            raise EngineError(f"policy engine {what}: reply is not a JSON object")
        return data

    async def chat_prompt_ids(self, user_message: str) -> list[int]:
        bos_prefix = await self._chat_bos_prefix()
        payload = {
            "messages": [{"role": "user", "content": user_message}],
            "add_generation_prompt": True,
        }
        rendered = (await self._post("/apply-template", payload, "chat template")).get("prompt")
        if not isinstance(rendered, str):
            raise EngineError("policy engine chat template: malformed reply (no prompt)")
        return [*bos_prefix, *await self._tokenize(rendered)]

    async def _tokenize(self, text: str) -> list[int]:
        # parse_special: special-token text becomes the special token, as with HF tokenizers.
        payload = {"content": text, "add_special": False, "parse_special": True}
        return _int_list(
            (await self._post("/tokenize", payload, "tokenize")).get("tokens"), "tokenize"
        )

    async def tokenize(self, text: str) -> list[int]:
        return await self._tokenize(text) if text else []

    async def detokenize(self, ids: Sequence[int]) -> str:
        if not ids:
            return ""
        data = await self._post("/detokenize", {"tokens": list(ids)}, "detokenize")
        text = data.get("content")
        if not isinstance(text, str):
            raise EngineError("policy engine detokenize: malformed reply (no content)")
        return text

    def _completion_payload(
        self, prompt_ids: Sequence[int], params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "prompt": list(prompt_ids),
            "n_predict": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            **NEUTRAL_SAMPLING,
            "stop": list(params.stop),
            "cache_prompt": True,
            "stream": stream,
        }
        if params.seed is not None:
            payload["seed"] = params.seed
        if params.grammar is not None:
            payload["grammar"] = params.grammar
        return payload

    async def generate(self, prompt_ids: Sequence[int], params: GenerationParams) -> Generation:
        payload = self._completion_payload(prompt_ids, params, stream=False)
        data = await self._post("/completion", payload, "completion")
        text = data.get("content")
        if not isinstance(text, str):
            raise EngineError("policy engine completion: malformed reply (no content)")
        return Generation(
            text=text + _stop_suffix(data, params),
            finish_reason=_finish(data, "completion"),
            prompt_tokens=_count(data, "tokens_evaluated") or len(prompt_ids),
            completion_tokens=_count(data, "tokens_predicted") or 0,
            cached_tokens=_cached(data),
        )

    async def stream_generate(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> AsyncIterator[GenerationChunk]:
        payload = self._completion_payload(prompt_ids, params, stream=True)
        url = self._root + "/completion"
        try:
            async with self._client.stream(
                "POST", url, json=payload, headers=self._headers, timeout=self._timeout
            ) as response:
                if response.status_code >= 400:
                    raise _status_error(
                        response.status_code, await response.aread(), "completion stream"
                    )
                async with aclosing(_parse_stream(response, params, len(prompt_ids))) as chunks:
                    async for chunk in chunks:
                        yield chunk
        except httpx.TransportError as exc:
            raise _transport_error(exc, "completion stream") from exc


def _stream_error(event: dict[str, Any]) -> EngineError:
    error = event["error"]
    code = error.get("code") if isinstance(error, dict) else None
    message = "policy engine completion stream: " + _error_message(json.dumps(event).encode())
    if isinstance(code, int) and code >= 500:
        return EngineUnavailable(message, status_code=code)
    return EngineError(message, status_code=code if isinstance(code, int) else None)


async def _parse_stream(
    response: httpx.Response, params: GenerationParams, prompt_len: int
) -> AsyncGenerator[GenerationChunk, None]:
    """llama-server's ``/completion`` SSE stream → text chunks, then one final chunk.

    Each event is ``data: {...}``; text events have ``"stop": false``, the last one has
    ``"stop": true`` with the stop type, the stopping word and the usage. There is no
    ``[DONE]``; ``:`` lines are keep-alive pings."""
    async for line in response.aiter_lines():
        if not line.startswith(_SSE_DATA):
            continue
        try:
            event = json.loads(line[len(_SSE_DATA) :])
        except ValueError as exc:
            raise EngineError("policy engine completion stream: malformed event") from exc
        if not isinstance(event, dict):
            raise EngineError("policy engine completion stream: malformed event")
        if "error" in event:
            raise _stream_error(event)
        text = event.get("content")
        if not isinstance(text, str):
            raise EngineError("policy engine completion stream: event without content")
        if event.get("stop") is not True:
            if text:
                yield GenerationChunk(text=text)
            continue
        yield GenerationChunk(
            text=text + _stop_suffix(event, params),
            finish_reason=_finish(event, "completion stream"),
            prompt_tokens=_count(event, "tokens_evaluated") or prompt_len,
            completion_tokens=_count(event, "tokens_predicted") or 0,
            cached_tokens=_cached(event),
        )
        return
    raise EngineUnavailable("policy engine completion stream ended before its end")
