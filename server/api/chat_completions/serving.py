"""Serving ``POST /v1/chat/completions``: a router profile runs an episode, a registry model is
passed through, anything else is a 404."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from router_model.registry import Registry, RouterProfile
from server.aio import aclose
from server.api.chat_completions.event_stream import EventStreamResponse
from server.api.chat_completions.passthrough import passthrough
from server.api.chat_completions.protocol import (
    AssistantMessage,
    ChatCompletion,
    Choice,
    Usage,
)
from server.api.chat_completions.request_parsing import (
    client_stop,
    parse_chat_request,
    question_of,
    read_json_body,
    reject_unsupported,
)
from server.episode.events import (
    AnswerDelta,
    EpisodeEvent,
    ReasoningDelta,
    RouteFinished,
    RouteStarted,
)
from server.episode.loop import PolicyOverrides
from server.episode.result import EpisodeResult
from server.errors import APIError, bad_request, model_not_found, sse_error_event
from server.operations.accounting import RequestAccount
from server.request_id import request_id_of
from server.state import ServingState
from server.upstream.cache import CACHE_HEADER, cache_wanted

T = TypeVar("T")

_DONE = b"data: [DONE]\n\n"


def state_of(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state


async def create_chat_completion(request: Request) -> Response:
    state = state_of(request)
    account = await state.ops.open_account(request)  # the caller: 401, 429, 402
    try:
        response = await _serve(request, state, account)
    except BaseException as exc:
        await account.close(exc)
        raise
    if not isinstance(response, EventStreamResponse):  # a stream closes its account at its end
        await account.close()
    return response


async def _serve(request: Request, state: ServingState, account: RequestAccount) -> Response:
    body = await read_json_body(request, state.settings.max_request_bytes)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request(
            "model: is required (a router profile or a registry model)", param="model"
        )
    registry = state.registry()
    profile = registry.profile(model)
    if profile is not None:
        account.serving_profile(profile)
        return await _serve_episode(request, state, registry, profile, body, account)
    spec = registry.model(model)
    if spec is not None:
        account.serving_model(spec)
        return await passthrough(state.upstream, spec, body, account)
    raise model_not_found(model)


async def _serve_episode(
    request: Request,
    state: ServingState,
    registry: Registry,
    profile: RouterProfile,
    body: dict[str, Any],
    account: RequestAccount,
) -> Response:
    chat = parse_chat_request(body)
    reject_unsupported(chat)
    question = question_of(chat, state.settings.max_question_chars)
    overrides = PolicyOverrides(
        temperature=chat.temperature,
        top_p=chat.top_p,
        max_tokens=chat.max_completion_tokens or chat.max_tokens,
        seed=chat.seed,
        stop=tuple(client_stop(chat)),
    )
    cache = cache_wanted(request.headers.get(CACHE_HEADER), body)
    runner = state.runner(registry, profile, cache=cache)
    request_id = request_id_of(request.scope)
    if chat.stream:
        events = account.watch(runner.run(question, overrides, request_id=request_id))
        try:
            first = await anext(events)  # engine failures here still get a proper status
        except BaseException:
            await events.aclose()
            raise
        return EventStreamResponse(
            account.stream(_sse(first, events, profile.name, request_id)), finished=account.close
        )
    result = await _cancel_on_disconnect(
        request, account.play(runner.run(question, overrides, request_id=request_id))
    )
    return _completion_response(result, profile.name, request_id)


async def _cancel_on_disconnect(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``, cancelling it (and its engine and upstream calls) if the client leaves."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task.cancelled():
        raise APIError(499, "The client closed the request.", code="client_closed_request")
    return task.result()


def _usage(result: EpisodeResult) -> Usage:
    totals = result.trace.totals
    return Usage(
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        total_tokens=result.usage.total_tokens,
        cost=totals.cost_usd,
    )


def _completion_response(result: EpisodeResult, profile: str, request_id: str) -> Response:
    trace = result.trace
    completion = ChatCompletion(
        id=f"chatcmpl-{request_id}",
        created=int(time.time()),
        model=profile,
        choices=[
            Choice(
                message=AssistantMessage(
                    content=result.answer_text, reasoning_content=result.context.response_text
                ),
                finish_reason=result.finish_reason,
            )
        ],
        usage=_usage(result),
        router=trace.model_dump(mode="json"),
    )
    return Response(
        orjson.dumps(completion.model_dump(mode="json")),
        media_type="application/json",
        headers=_router_headers(result),
    )


def _router_headers(result: EpisodeResult) -> dict[str, str]:
    totals = result.trace.totals
    return {
        "x-router-cost-usd": f"{totals.cost_usd:.8f}",
        "x-router-routes": str(totals.routes),
        "x-router-models": ",".join(totals.models),
        "x-router-latency-ms": f"{totals.total_ms:.1f}",
    }


class _ChunkWriter:
    """Serialises ``chat.completion.chunk`` events of one streamed episode."""

    def __init__(self, profile: str, request_id: str) -> None:
        self._head = {
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": profile,
        }

    def chunk(
        self,
        delta: dict[str, Any] | None,
        *,
        finish_reason: str | None = None,
        **extra: Any,
    ) -> bytes:
        choices = (
            [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        )
        payload = {**self._head, "choices": choices, **extra}
        return b"data: " + orjson.dumps(payload) + b"\n\n"


def _event_chunk(writer: _ChunkWriter, event: EpisodeEvent) -> list[bytes]:
    if isinstance(event, ReasoningDelta):
        return [writer.chunk({"reasoning_content": event.text})]
    if isinstance(event, AnswerDelta):
        return [writer.chunk({"content": event.text})]
    if isinstance(event, RouteStarted):
        route = {
            "event": "route_started",
            "index": event.index,
            "written_model": event.written_model,
            "model": event.model,
            "query": event.query,
        }
        return [writer.chunk({"reasoning_content": ""}, router=route)]
    if isinstance(event, RouteFinished):
        step = event.step
        shown = step.reply_excerpt if step.reply_excerpt is not None else "None"
        route = {"event": "route_finished", "step": step.model_dump(mode="json")}
        return [
            writer.chunk(
                {"reasoning_content": f"\n\n<information>{shown}</information>\n\n"}, router=route
            )
        ]
    result = event.result
    return [
        writer.chunk({}, finish_reason=result.finish_reason),
        writer.chunk(
            None,
            usage=_usage(result).model_dump(mode="json"),
            router=result.trace.model_dump(mode="json"),
        ),
    ]


async def _sse(
    first: EpisodeEvent,
    events: AsyncIterator[EpisodeEvent],
    profile: str,
    request_id: str,
) -> AsyncIterator[bytes]:
    writer = _ChunkWriter(profile, request_id)
    try:
        yield writer.chunk({"role": "assistant", "content": ""})
        for data in _event_chunk(writer, first):
            yield data
        async for event in events:
            for data in _event_chunk(writer, event):
                yield data
    except Exception as exc:  # after the first byte, errors travel in the stream
        yield sse_error_event(exc)
    finally:
        await aclose(events)
    yield _DONE
