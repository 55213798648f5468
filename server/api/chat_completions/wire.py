"""Every byte a client sees from ``POST /v1/chat/completions``, episodes and passthrough alike.

Completions, chunks, the one final usage chunk, the ``router`` object, the ``x-router-*``
headers, ``[DONE]``, in-stream error events and keep-alive comments are written here and
nowhere else.

- ``usage`` has OpenAI's fields plus ``cost`` (USD). A stream carries a final usage chunk
  (``choices: []``) only when the client set ``stream_options.include_usage``, as OpenAI does;
  a passthrough stream's own usage chunk gets ``cost`` merged in (and keeps the stream's id)
  instead of a second one being added.
- The ``router`` object (the trace: the same schema for an episode and a passthrough) rides on
  the last chunk before ``[DONE]``: the usage chunk when there is one, else the chunk with the
  finish reason. Non-streamed bodies carry it as a top-level field.
- The policy's reasoning goes in ``reasoning_content``, ``reasoning`` or both
  (``ROUTER_R1_STREAM_REASONING_FIELDS``).
- After a stream has started, an error is one event with the OpenAI error envelope, then
  ``[DONE]``. A silent stream gets an SSE comment every ``keepalive_interval_s``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import orjson

from router_model.episode.trace import RouterTrace, trace_json
from server.errors import APIError

ReasoningFields = Literal["both", "reasoning", "reasoning_content"]

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"
STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
"""``X-Accel-Buffering: no``: nginx (and proxies that honour it) pass events on at once."""


def sse(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def error_event(error: APIError) -> bytes:
    return sse(error.envelope())


def reasoning_keys(fields: ReasoningFields) -> tuple[str, ...]:
    if fields == "both":
        return ("reasoning_content", "reasoning")
    return (fields,)


def usage_object(trace: RouterTrace) -> dict[str, Any]:
    totals = trace.totals
    prompt, completion = totals.prompt_tokens, totals.completion_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": totals.cost_usd,
    }


def router_object(trace: RouterTrace) -> orjson.Fragment:
    """The ``router`` field: the trace's JSON, already encoded (orjson embeds it as is; about
    10 µs less per response than dumping the model to Python objects first)."""
    return orjson.Fragment(trace_json(trace))


def router_headers(trace: RouterTrace) -> dict[str, str]:
    """The accounting headers of a response whose trace is known before its first byte."""
    totals = trace.totals
    cost = f"{totals.cost_usd:.8f}"
    return {
        "x-router-cost-usd": cost,
        "x-router-routes": str(totals.routes),
        "x-router-models": ",".join(totals.models),
        "x-router-latency-ms": f"{totals.total_ms:.1f}",
        # a LiteLLM proxy in front of this gateway accounts the whole fan-out from it
        "x-litellm-response-cost": cost,
    }


def header_value(value: str) -> str:
    """A forwarded header value Starlette can send: its UTF-8 bytes carried as latin-1
    characters, so the client receives the bytes the upstream sent (HTTP header values are
    bytes; Starlette would fail on ``café €``); control characters dropped."""
    if value.isascii() and value.isprintable():
        return value
    cleaned = "".join(c for c in value if c == "\t" or (ord(c) >= 32 and ord(c) != 127))
    return cleaned.encode("utf-8", "surrogateescape").decode("latin-1")


def forwardable(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: header_value(value) for name, value in headers.items()}


# ---------------------------------------------------------------------------- episodes


def episode_completion(
    trace: RouterTrace,
    *,
    answer: str,
    reasoning: str,
    finish_reason: str,
    model: str,
    fields: ReasoningFields,
) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": answer}
    for key in reasoning_keys(fields):
        message[key] = reasoning
    return orjson.dumps(
        {
            "id": f"chatcmpl-{trace.request_id}",
            "object": "chat.completion",
            "created": int(trace.started_at or time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": usage_object(trace),
            "router": router_object(trace),
        }
    )


class EpisodeChunks:
    """The ``chat.completion.chunk`` events of one streamed episode."""

    def __init__(
        self, request_id: str, model: str, *, fields: ReasoningFields, include_usage: bool
    ) -> None:
        self._head = (
            b'{"id":'
            + orjson.dumps(f"chatcmpl-{request_id}")
            + b',"object":"chat.completion.chunk","created":'
            + str(int(time.time())).encode()
            + b',"model":'
            + orjson.dumps(model)
        )
        self._reasoning_keys = reasoning_keys(fields)
        self._include_usage = include_usage

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = orjson.dumps({"choices": choices, **extra})
        return b"data: " + self._head + b"," + body[1:] + b"\n\n"

    def _delta(self, delta: dict[str, Any], **extra: Any) -> bytes:
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": None}], **extra)

    def role(self) -> bytes:
        return self._delta({"role": "assistant", "content": ""})

    def reasoning(self, text: str, **extra: Any) -> bytes:
        return self._delta(dict.fromkeys(self._reasoning_keys, text), **extra)

    def content(self, text: str) -> bytes:
        return self._delta({"content": text})

    def router_event(self, event: Mapping[str, Any], reasoning: str = "") -> bytes:
        """A route event (``router`` field), with the reasoning text that goes with it."""
        return self.reasoning(reasoning, router=dict(event))

    def end(self, trace: RouterTrace, finish_reason: str) -> Iterable[bytes]:
        """The finish chunk, the usage chunk if asked for, and ``[DONE]``."""
        router = router_object(trace)
        finish = [{"index": 0, "delta": {}, "finish_reason": finish_reason}]
        if self._include_usage:
            yield self._chunk(finish)
            yield self._chunk([], usage=usage_object(trace), router=router)
        else:
            yield self._chunk(finish, router=router)
        yield DONE


# ---------------------------------------------------------------------------- passthrough


def passthrough_completion(body: dict[str, Any], trace: RouterTrace, cost_usd: float) -> bytes:
    """The upstream's body with ``usage.cost`` and ``router`` added (nothing else changed)."""
    usage = body.get("usage")
    if isinstance(usage, dict):
        usage["cost"] = cost_usd
    body.pop("router", None)  # an upstream's own "router" field is replaced, as before
    body["router"] = router_object(trace)  # the last key
    return orjson.dumps(body)


def merged_event(data: Mapping[str, Any], **extra: Any) -> bytes:
    """An upstream chunk's JSON with fields added (``router``)."""
    return sse({**data, **extra})


def passthrough_usage_chunk(
    upstream_chunk: Mapping[str, Any] | None, head: Mapping[str, Any], trace: RouterTrace
) -> bytes:
    """The stream's usage chunk: the upstream's own with ``cost`` merged in, or, when it sent
    none, one in the stream's name (``head``: its first chunk's id, created, model) with the
    estimated usage."""
    if upstream_chunk is not None:
        chunk = dict(upstream_chunk)
        usage = dict(chunk.get("usage") or {})
    else:
        chunk = {
            "id": head.get("id", f"chatcmpl-{trace.request_id}"),
            "object": "chat.completion.chunk",
            "created": head.get("created", int(trace.started_at)),
            "model": head.get("model", trace.model),
            "choices": [],
        }
        usage = usage_object(trace)
    usage["cost"] = trace.totals.cost_usd
    chunk["usage"] = usage
    chunk["router"] = router_object(trace)
    return sse(chunk)
