"""``model=<registry model>``: forward to its upstream, adding only usage and cost accounting.

Non-streamed replies are the upstream's body with ``usage.cost`` (USD) and the ``router``
object added. Streams are relayed event by event, byte for byte, except the last events (see
:mod:`.wire`): the upstream's ``[DONE]`` is replaced by ours after the accounting is known,
its usage chunk gets ``cost`` merged in (sent only when the client asked for usage), and the
``router`` object rides on the last chunk. A stream that ends without ``[DONE]`` or a finish
reason was cut off: the client gets an error event, never a complete-looking stream.

A model that fails before its first byte hands the request to its registry ``fallbacks``
(:mod:`server.upstream.fallback`): the trace has one step per model tried, the cost sums
them, and ``x-router-fallback`` names the one that answered.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from router_model.episode.turns import estimated_prompt_tokens
from router_model.registry import ModelSpec
from server.api.chat_completions import wire
from server.api.chat_completions.event_stream import EventStreamResponse
from server.api.disconnect import cancel_on_disconnect
from server.errors import bad_request, classify
from server.lifecycle.request import RequestLifecycle, UpstreamCall
from server.state import AppState
from server.upstream import UpstreamError, UpstreamResult, UpstreamStream, is_done
from server.upstream.errors import UpstreamBadResponseError, call_status
from server.upstream.fallback import FALLBACK_HEADER, fallback_chain, falls_back
from server.upstream.sse import event_data, is_comment, usage_event

_FINISHED = re.compile(rb'"finish_reason"\s*:\s*"')
_HIDDEN_HEADERS = frozenset({"content-type", "content-length"})


def _check_body(body: dict[str, Any]) -> None:
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise bad_request("messages: a non-empty list of messages is required", param="messages")
    if not isinstance(body.get("stream", False), bool):
        raise bad_request("stream: must be a boolean", param="stream")


def _wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _forwarded(headers: dict[str, str]) -> dict[str, str]:
    return wire.forwardable({k: v for k, v in headers.items() if k not in _HIDDEN_HEADERS})


async def serve_passthrough(
    request: Request,
    state: AppState,
    model: ModelSpec,
    body: dict[str, Any],
    life: RequestLifecycle,
) -> Response:
    _check_body(body)
    answered, call, reply = await _call_with_fallbacks(request, state, model, body, life)
    headers = {FALLBACK_HEADER: answered.name} if answered is not model else {}
    if isinstance(reply, UpstreamStream):
        stream = reply
        call.attempts, call.deployment = stream.attempts, stream.deployment
        life.streamed = True
        relay = _Relay(stream, call, life, include_usage=_wants_usage(body))
        headers = {**_forwarded(stream.headers), **wire.STREAM_HEADERS, **headers}
        headers["x-router-models"] = answered.name

        async def finished(error: BaseException | None) -> None:
            await stream.aclose()  # already closed by the body's end, unless it never started
            relay.account()
            await life.close(error)

        return EventStreamResponse(relay.events(), headers=headers, finished=finished)
    result = reply
    usage = result.usage
    call.status, call.attempts, call.deployment = "ok", result.attempts, result.deployment
    call.latency_ms = result.latency_s * 1000
    call.prompt_tokens = usage.prompt_tokens if usage else 0
    call.completion_tokens = usage.completion_tokens if usage else 0
    call.cost_usd, call.usage_estimated = result.cost_usd, False
    trace = life.trace_so_far()
    headers = {**_forwarded(result.headers), **wire.router_headers(trace), **headers}
    return Response(
        wire.passthrough_completion(result.body, trace, trace.totals.cost_usd),
        status_code=result.status_code,
        media_type="application/json",
        headers=headers,
    )


async def _call_with_fallbacks(
    request: Request,
    state: AppState,
    model: ModelSpec,
    body: dict[str, Any],
    life: RequestLifecycle,
) -> tuple[ModelSpec, UpstreamCall, UpstreamStream | UpstreamResult]:
    """The model's reply (headers of a stream, or the whole body), or, when it fails before
    its first byte in a way another model may fix, the first of its fallbacks' that answers
    (see :mod:`server.upstream.fallback`). Every call is recorded (one trace step each)."""
    pool = state.upstream
    chain = fallback_chain(state.registry.get(), model)
    # until the upstream says: the request was sent, so its prompt may be billed
    estimate = estimated_prompt_tokens(orjson.dumps(body.get("messages")).decode())
    for position, candidate in enumerate(chain):
        call = (
            life.serving_passthrough(model)
            if position == 0
            else life.passthrough_fallback(candidate)
        )
        call.prompt_tokens = estimate
        call.cost_usd = candidate.pricing_of().cost_usd(estimate, 0)
        call.usage_estimated = True
        try:
            if body.get("stream"):
                opened = pool.chat_stream(candidate, body, prompt_tokens=estimate)
                return candidate, call, await cancel_on_disconnect(request.receive, opened)
            answer = pool.chat(candidate, body, prompt_tokens=estimate)
            return candidate, call, await cancel_on_disconnect(request.receive, answer)
        except UpstreamError as exc:  # refused or failed before any reply: nothing was billed
            call.status, call.error, call.attempts = call_status(exc), exc.message, exc.attempts
            call.prompt_tokens, call.cost_usd, call.usage_estimated = 0, 0.0, False
            call.latency_ms = max(life.elapsed_ms() - call.started_ms, 0.0)
            if position + 1 == len(chain) or not falls_back(exc):
                raise
    raise AssertionError("unreachable: the chain holds at least the model itself")


class _Relay:
    """The events of one passthrough stream, and what it spent (into ``call``)."""

    def __init__(
        self,
        stream: UpstreamStream,
        call: UpstreamCall,
        life: RequestLifecycle,
        *,
        include_usage: bool,
    ) -> None:
        self._stream = stream
        self._call = call
        self._life = life
        self._include_usage = include_usage
        self._cut_off: UpstreamError | None = None  # the stream ended early, cleanly
        self._accounted = False

    def account(self) -> None:
        """Copy the stream's usage into the call record (once its events have ended)."""
        if self._accounted:
            return
        self._accounted = True
        stream, call = self._stream, self._call
        if stream.usage is not None:
            call.prompt_tokens = stream.usage.prompt_tokens
            call.completion_tokens = stream.usage.completion_tokens
            call.cost_usd = stream.cost_usd
            call.usage_estimated = stream.usage_estimated
        error = stream.error or self._cut_off
        if error is not None:
            call.status, call.error = call_status(error), error.message
        elif call.status == "pending":
            call.status = "ok"

    async def events(self) -> AsyncIterator[bytes]:
        held: bytes | None = None  # the finish chunk, when the router object rides on it
        head: dict[str, Any] = {}  # the first chunk's fields (the stream's id, model, created)
        upstream_usage: dict[str, Any] | None = None
        finished = False
        life = self._life
        try:
            async for event in self._stream.events(drop_injected_usage=False):
                if is_done(event):
                    continue
                if is_comment(event):
                    yield event
                    continue
                if not head:
                    head = _json(event) or {"id": None}
                    life.first_token()
                found = usage_event(event)
                if found is not None and found.usage_only:
                    upstream_usage = _json(event)  # sent last, with cost, if asked for
                    continue
                if held is not None:  # more after the finish chunk: it was not the last
                    yield held
                    held = None
                if _FINISHED.search(event) is not None:
                    finished = True
                    if not self._include_usage:
                        held = event
                        continue
                yield event
        except UpstreamError as exc:  # stalled, broke off, or ran past its bound
            life.failed(exc)
            yield wire.error_event(classify(exc))
            yield wire.DONE
            return
        if not (self._stream.done or finished):
            error = UpstreamBadResponseError(
                f"{self._call.model.name}: the upstream stream ended before its end "
                "(no finish reason, no [DONE]): the reply is incomplete"
            )
            self._cut_off = error
            life.failed(error)
            yield wire.error_event(classify(error))
            yield wire.DONE
            return
        self.account()
        trace = life.trace_so_far()
        if self._include_usage:
            if held is not None:
                yield held
            yield wire.passthrough_usage_chunk(upstream_usage, head, trace)
        elif held is not None:
            data = _json(held)
            yield (
                held if data is None else wire.merged_event(data, router=wire.router_object(trace))
            )
        yield wire.DONE


def _json(event: bytes) -> dict[str, Any] | None:
    data = event_data(event)
    if data is None:
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
