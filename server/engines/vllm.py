"""The policy engine behind vLLM's OpenAI-compatible server."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any, Self

import httpx

from router_model.episode.engine import (
    EngineError,
    EngineUnavailable,
    FinishReason,
    Generation,
    GenerationChunk,
    GenerationParams,
)

_SSE_DATA = "data:"
_SSE_DONE = "[DONE]"


def server_root(base_url: str) -> str:
    """``http://host:8000/v1`` → ``http://host:8000`` (vLLM serves /tokenize at the root)."""
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _error_message(body: bytes) -> str:
    """The error text of a vLLM/OpenAI error body, or the start of the raw body."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return str(data)[:200]


def _status_error(status: int, body: bytes, what: str) -> EngineError:
    message = f"policy engine {what}: HTTP {status}: {_error_message(body)}"
    if status >= 500:
        return EngineUnavailable(message, status_code=status)
    return EngineError(message, status_code=status)


def _transport_error(exc: httpx.TransportError, what: str) -> EngineUnavailable:
    timed_out = isinstance(exc, httpx.TimeoutException)
    kind = "timed out" if timed_out else "unreachable"
    return EngineUnavailable(
        f"policy engine {what}: {kind}: {type(exc).__name__}: {exc}", timed_out=timed_out
    )


def _finish_reason(value: object) -> FinishReason:
    if value == "length":
        return "length"
    if value == "abort":
        raise EngineUnavailable("policy engine aborted the request")
    return "stop"


def _int_list(value: object, what: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(i, int) for i in value):
        raise EngineError(f"policy engine {what}: malformed reply (no token id list)")
    return list(value)


class VLLMEngine:
    """:class:`~router_model.episode.engine.PolicyEngine` over vLLM's HTTP API.

    ``client`` is shared and never closed here; ``base_url`` is the registry endpoint's
    OpenAI base (ending in ``/v1``). Tests pass a client with an ASGI or mock transport.
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
        self._client = client
        self._root = server_root(base_url)
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout or httpx.Timeout(120.0, connect=5.0)

    @property
    def model(self) -> str:
        return self._model

    def with_headers(self, headers: Mapping[str, str]) -> Self:
        """This engine with ``headers`` added to every request (an episode's session header);
        the copy shares the HTTP client (and a llama.cpp engine's request slots)."""
        clone = copy.copy(self)
        clone._headers = {**self._headers, **headers}
        return clone

    async def _post(
        self, path: str, payload: dict[str, Any], what: str, *, idempotent: bool = True
    ) -> dict[str, Any]:
        """POST one JSON request. An idempotent one (tokenize, detokenize, the chat template:
        pure functions of their input) is sent once more, on a fresh connection, after a
        transport failure other than a timeout: a pooled connection the server had already
        closed fails on write ("Can not write request body", "Server disconnected"; seen with
        llama-server, which closes idle and post-stream connections), and such a request was
        never processed. A generation is never re-sent here (it may have been processed)."""
        url = self._root + path
        try:
            response = await self._client.post(
                url, json=payload, headers=self._headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            raise _transport_error(exc, what) from exc
        except httpx.TransportError as exc:
            if not idempotent:
                raise _transport_error(exc, what) from exc
            try:
                response = await self._client.post(
                    url, json=payload, headers=self._headers, timeout=self._timeout
                )
            except httpx.TransportError as again:
                raise _transport_error(again, what) from again
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
        payload = {
            "model": self._model,
            "messages": [{"role": "user", "content": user_message}],
            "add_generation_prompt": True,
        }
        data = await self._post("/tokenize", payload, "chat tokenize")
        return _int_list(data.get("tokens"), "chat tokenize")

    async def tokenize(self, text: str) -> list[int]:
        if not text:
            return []
        payload = {"model": self._model, "prompt": text, "add_special_tokens": False}
        data = await self._post("/tokenize", payload, "tokenize")
        return _int_list(data.get("tokens"), "tokenize")

    async def detokenize(self, ids: Sequence[int]) -> str:
        if not ids:
            return ""
        data = await self._post(
            "/detokenize", {"model": self._model, "tokens": list(ids)}, "detokenize"
        )
        text = data.get("prompt")
        if not isinstance(text, str):
            raise EngineError("policy engine detokenize: malformed reply (no prompt)")
        return text

    def _completion_payload(
        self, prompt_ids: Sequence[int], params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self._model,
            "prompt": list(prompt_ids),
            **params.completion_fields(),
            "skip_special_tokens": True,
            "stream": stream,
        }
        if params.grammar is not None:
            payload["structured_outputs"] = {"grammar": params.grammar}
        if stream:
            payload["stream_options"] = {"include_usage": True}
        return payload

    async def generate(self, prompt_ids: Sequence[int], params: GenerationParams) -> Generation:
        payload = self._completion_payload(prompt_ids, params, stream=False)
        data = await self._post("/v1/completions", payload, "completion", idempotent=False)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise EngineError("policy engine completion: malformed reply (no choices)")
        text = choices[0].get("text")
        if not isinstance(text, str):
            raise EngineError("policy engine completion: malformed reply (no text)")
        usage = data.get("usage") or {}
        return Generation(
            text=text,
            finish_reason=_finish_reason(choices[0].get("finish_reason")),
            prompt_tokens=int(usage.get("prompt_tokens", len(prompt_ids))),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            cached_tokens=_cached_tokens(usage),
        )

    async def stream_generate(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> AsyncIterator[GenerationChunk]:
        payload = self._completion_payload(prompt_ids, params, stream=True)
        url = self._root + "/v1/completions"
        try:
            async with self._client.stream(
                "POST", url, json=payload, headers=self._headers, timeout=self._timeout
            ) as response:
                if response.status_code >= 400:
                    raise _status_error(
                        response.status_code, await response.aread(), "completion stream"
                    )
                media_type = response.headers.get("content-type", "text/event-stream")
                if "text/event-stream" not in media_type:  # a proxy's error page, say
                    raise EngineError(
                        f"policy engine completion stream: malformed reply ({media_type}, "
                        "not an event stream)"
                    )
                async with aclosing(_parse_stream(response, len(prompt_ids))) as chunks:
                    async for chunk in chunks:
                        yield chunk
        except httpx.TransportError as exc:
            raise _transport_error(exc, "completion stream") from exc

    async def ready(self) -> bool:
        try:
            response = await self._client.get(
                self._root + "/health", headers=self._headers, timeout=self._timeout
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""


async def _parse_stream(
    response: httpx.Response, prompt_len: int
) -> AsyncGenerator[GenerationChunk, None]:
    """vLLM's SSE completion stream → text chunks, then one final chunk with usage."""
    finish: object = None
    usage: dict[str, Any] = {}
    done = False
    async for line in response.aiter_lines():
        if not line.startswith(_SSE_DATA):
            continue
        data = line[len(_SSE_DATA) :].strip()
        if data == _SSE_DONE:
            done = True
            break
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise EngineError("policy engine completion stream: malformed event") from exc
        if not isinstance(event, dict):
            raise EngineError("policy engine completion stream: malformed event")
        if "error" in event:
            raise EngineError(f"policy engine completion stream: {_error_message(data.encode())}")
        for choice in event.get("choices") or ():
            text = choice.get("text") or ""
            if text:
                yield GenerationChunk(text=text)
            if choice.get("finish_reason") is not None:
                finish = choice["finish_reason"]
        if isinstance(event.get("usage"), dict):
            usage = event["usage"]
    if finish is None:
        detail = "without a finish reason" if done else "before its end"
        raise EngineUnavailable(f"policy engine completion stream ended {detail}")
    yield GenerationChunk(
        text="",
        finish_reason=_finish_reason(finish),
        prompt_tokens=int(usage.get("prompt_tokens", prompt_len)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        cached_tokens=_cached_tokens(usage),
    )


def _cached_tokens(usage: dict[str, Any]) -> int | None:
    """``usage.prompt_tokens_details.cached_tokens`` (vLLM with
    ``--enable-prompt-tokens-details``, the llama.cpp server's addition), None when absent."""
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return cached if isinstance(cached, int) and not isinstance(cached, bool) else None
