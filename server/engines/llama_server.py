"""The policy engine behind llama.cpp's own HTTP server, ``llama-server``.

The episode loop needs exact token ids in and out; llama-server's *native* endpoints give
them (its OpenAI ones are used for chat upstreams, not here). What follows was read in the
server's source and README of the llama.cpp vendored in llama-cpp-python 0.3.36 (the one
``scripts/setup_llama_server.sh`` builds; ``--version``: "0.5.0-dev (build 0, commit
unknown)", ``/props`` ``build_info`` "b0-unknown": the sdist carries no git metadata) and
checked against the running binary with SmolLM2-135M-Instruct and
Qwen2.5-Coder-1.5B-Instruct (``tests/integration/test_llama_server.py``).

Endpoints (all at the server root; ``/v1`` is only for the OpenAI-compatible ones)
    - ``POST /apply-template`` ``{"messages", "add_generation_prompt": true}`` →
      ``{"prompt": text}``: the GGUF's Jinja template rendered by llama.cpp's own Jinja
      engine (``--jinja`` is the default in this version). When the model adds BOS itself
      (``tokenizer.ggml.add_bos_token``), a leading BOS string is cut off the rendering;
      Hugging Face keeps it. Neither model here adds BOS: SmolLM2 (BOS ``<|im_start|>``)
      and Qwen2.5 (BOS ``<|endoftext|>``, EOS ``<|im_end|>``); for both, the rendered text
      tokenized with special tokens parsed equals ``apply_chat_template(tokenize=True)``
      (checked against transformers for SmolLM2).
    - ``POST /tokenize`` ``{"content", "add_special": false, "parse_special": true}`` →
      ``{"tokens": [...]}``; ``add_special`` (default false) adds BOS; ``parse_special``
      (default true) turns special-token text (``<|im_end|>``) into the special token, as HF
      tokenizers do; ``with_pieces`` returns ``{"id", "piece"}`` objects instead. ``""``
      tokenizes to ``[]`` even with ``add_special``.
      ``POST /detokenize`` ``{"tokens"}`` → ``{"content"}``.
    - ``POST /completion`` (native; ``/v1/completions`` is the OpenAI shape of the same
      task): ``prompt`` may be a list of token ids (no BOS is added to an id list);
      ``n_predict`` (alias ``max_tokens``); ``stop`` (list); ``seed``; ``grammar`` (GBNF;
      a broken grammar is a 400 "failed to parse grammar"); ``cache_prompt`` (default
      true); ``stream``. A prompt longer than the slot's context is a 400
      ``exceed_context_size_error`` before anything runs.
      The reply: ``content`` WITHOUT the stop string (and without anything after it);
      ``stop_type`` ``eos`` | ``word`` | ``limit`` (``none`` while generating);
      ``stopping_word`` (the stop string, else ""); ``tokens_predicted`` (completion
      tokens, EOS counted), ``tokens_evaluated`` (prompt tokens), ``truncated`` (context
      full: stop_type ``limit``), ``timings`` {``cache_n``: prompt tokens reused from the
      slot's cache, at most prompt - 1: the last prompt token is always evaluated again),
      ``prompt_n``: prompt tokens evaluated, ``prompt_per_second``,
      ``predicted_n``, ``predicted_per_second``, ...}, and ``tokens_cached`` (every token
      in the slot afterwards, prompt and completion: NOT the reuse count). The OpenAI
      endpoint reports the reuse as ``usage.prompt_tokens_details.cached_tokens``.
      The EOS token never reaches ``content`` (special tokens render as "" unless the
      server runs with ``--special``).
    - Streaming: SSE ``data: {json}`` events, no ``[DONE]``; ``:`` lines are keep-alive
      pings (``--sse-ping-interval``, 30 s). One event per token, ``{"content": piece,
      "tokens": [id], "stop": false, "id_slot": -1, "tokens_predicted", ...}``; text that
      may be the start of a stop string is held back (``content`` "") until it is not;
      the last event has ``"stop": true``, ``content`` "" and the fields above. A stream
      cut by ``n_predict`` while text is held back never sends that text (the
      non-streamed ``content`` has it): a turn that ends with ``length`` may miss the
      start of a closing tag at its end. An error after the headers is
      ``data: {"error": {"code", "message", "type"}}``. HTTP errors are
      ``{"error": {"code", "message", "type"}}`` (400 ``invalid_request_error``,
      ``exceed_context_size_error``; 503 ``unavailable_error``
      "Loading model"; 500 ``server_error``).
    - ``GET /health``: 503 while the model loads, then 200 ``{"status": "ok"}``;
      ``GET /props``: ``chat_template``, ``bos_token``/``eos_token`` (strings),
      ``total_slots``, ``default_generation_settings.n_ctx`` (per slot), ``build_info``;
      ``GET /slots`` (``--no-slots`` hides it): per slot ``n_ctx``, ``is_processing``,
      ``params``; ``GET /metrics`` with ``--metrics``: ``llamacpp:prompt_tokens_total``,
      ``prompt_tokens_cached_total`` (not in the README), ``prompt_seconds_total``,
      ``prompt_tokens_seconds``, ``tokens_predicted_total``,
      ``tokens_predicted_seconds_total``, ``predicted_tokens_seconds``,
      ``requests_processing``, ``requests_deferred``, ``n_tokens_max``,
      ``n_decode_total``, ``n_busy_slots_per_decode``, ``spec_decode_*``.

Sampling: temperature + top-p only, as in training
    The server's defaults are not neutral (top_k 40, min_p 0.05, temperature 0.8,
    top_p 0.95; chain ``penalties;dry;top_n_sigma;top_k;typ_p;top_p;min_p;xtc;
    temperature``). ``"samplers": ["temperature", "top_p"]`` makes the chain exactly that
    (a sampler not named is not applied; then ``dist`` draws with ``seed``), in HF/vLLM's
    order (temperature before top-p). :data:`NEUTRAL_SAMPLING` also sets every other
    sampler to its off value (``top_k`` 0, ``min_p`` 0, ``typical_p`` 1, ``top_n_sigma``
    -1, ``dynatemp_range`` 0, ``repeat_penalty`` 1, ``presence_penalty``/
    ``frequency_penalty`` 0, ``dry_multiplier`` 0, ``xtc_probability`` 0, ``mirostat``
    0). The grammar is applied outside the chain: llama.cpp samples, and only when the
    token breaks the grammar resamples from the grammar-masked distribution, which is
    the masked, renormalized distribution when top-p is 1.

Slots, batching and caches (server flags)
    - ``-np/--parallel N`` slots (default -1 = auto), continuous batching on by default
      (``-cb``/``--no-cont-batching``). ``-c/--ctx-size`` is the whole KV cache: without
      ``--kv-unified`` (the default when N is given) each slot gets ``ctx-size / N``
      tokens; ``--kv-unified`` shares one buffer (each slot may then use up to all of it);
      ``--kv-unified-per-slot N`` caps a slot's context.
    - A request goes to the idle slot whose cached tokens share the longest prefix with
      its prompt (``-sps/--slot-prompt-similarity``, default 0.10), else to the least
      recently used one; ``cache_prompt`` then evaluates only the new suffix. So the next
      turn of an episode (the previous prompt + turn + observation) finds its slot.
    - The RAM prompt cache keeps slot states that a new task would overwrite, and loads
      them back for a matching prompt: ``-cram/--cache-ram MiB`` bounds it (default 8192
      MiB; 0 = off, -1 = no limit); ``--cache-idle-slots`` (default on) saves idle slots
      to it. ``--cache-reuse N`` (KV shifting of chunks) stays 0: it would reuse KV at
      shifted positions, not an exact prefix.
    - Threads: ``-t`` (generation), ``-tb`` (prompt/batch), ``--threads-http``.
    - Nothing touches the network unless asked (``-hf``, ``-mu``, ``--fim-*``/``*-default``
      presets, ``--tools``, MCP): ``--offline`` forbids downloads anyway, ``--no-webui``
      serves no UI (the build has none either: ``-DLLAMA_BUILD_UI=OFF``,
      ``-DLLAMA_USE_PREBUILT_UI=OFF``), ``-DLLAMA_OPENSSL=OFF`` (no HTTPS client).
    Recommended command lines: :mod:`local_stack.llama_server_process`.

What this engine does with it
    ``chat_prompt_ids``: ``/apply-template`` then ``/tokenize`` (no special tokens added,
    special-token text parsed), putting back a BOS the template wrote if llama.cpp cut it
    off (model adds BOS and the template writes ``bos_token``: learnt once, from
    ``/props`` and two ``/tokenize`` calls of "a" with and without ``add_special``).
    ``generate``/``stream_generate``: ``/completion`` with the token-id prompt,
    :data:`NEUTRAL_SAMPLING`, the stop strings, ``cache_prompt``, the grammar; the turn text
    gets its ``stopping_word`` back (the training layout keeps the
    closing tag); ``cached_tokens`` is ``timings.cache_n``. Errors as in the other
    engines: connect errors, timeouts and 5xx are :class:`EngineUnavailable`
    (``timed_out`` for timeouts), 4xx and malformed replies :class:`EngineError`; a
    stream that ends without its final event is unavailable. No client-side queue:
    requests beyond the slots wait in llama-server (``llamacpp:requests_deferred``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import httpx

from router_model.episode.engine import (
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
    """:class:`~router_model.episode.engine.PolicyEngine` over llama-server's native API.

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
            # "" tokenizes to [] even with add_special, so a one-character probe tells
            # whether the model adds BOS, and which id it is.
            plain = await self._tokenize("a", add_special=False)
            marked = await self._tokenize("a", add_special=True)
            added = marked[: len(marked) - len(plain)]
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

    async def _tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        # parse_special: special-token text becomes the special token, as with HF tokenizers.
        payload = {"content": text, "add_special": add_special, "parse_special": True}
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
        data = await self._post("/completion", payload, "completion", idempotent=False)
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
