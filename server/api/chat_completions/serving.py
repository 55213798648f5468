"""Serving ``POST /v1/chat/completions``: a router profile runs an episode, a registry model is
passed through, anything else is a 404.

Every request is one :class:`~server.lifecycle.request.RequestLifecycle`: opened first,
closed exactly once (here for a plain response or a failure; by the stream's end for a
stream), whatever ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from router_model.episode.aio import aclose
from router_model.episode.events import (
    AnswerDelta,
    EpisodeEvent,
    EpisodeFinished,
    ReasoningDelta,
    RouteFinished,
    RouteStarted,
)
from router_model.episode.loop import EpisodeRun
from router_model.episode.settings import PolicyOverrides
from router_model.registry import Registry, RouterProfile
from server.api.chat_completions import wire
from server.api.chat_completions.event_stream import EventStreamResponse
from server.api.chat_completions.passthrough import serve_passthrough
from server.api.chat_completions.request_parsing import (
    client_stop,
    parse_chat_request,
    question_of,
    read_json_body,
    reject_unsupported,
)
from server.api.disconnect import cancel_on_disconnect
from server.deps import app_state, authenticate
from server.errors import bad_request, classify, error_response, model_not_found
from server.lifecycle.request import RequestLifecycle
from server.request_id import request_id_of
from server.state import AppState
from server.upstream.cache import CACHE_HEADER, cache_wanted


async def create_chat_completion(request: Request) -> Response:
    state = app_state(request)
    life = state.recorder.open(request_id_of(request.scope))
    try:
        response = await _serve(request, state, life)
    except asyncio.CancelledError as exc:  # shutdown: recorded, and not swallowed
        await life.close(exc)
        raise
    except Exception as exc:
        await life.close(exc)
        return error_response(exc, log=False)  # the lifecycle logged it if unexpected
    if not isinstance(response, EventStreamResponse):  # a stream closes it at its end
        await life.close()
    return response


async def _serve(request: Request, state: AppState, life: RequestLifecycle) -> Response:
    life.caller = authenticate(state, request.headers)
    await state.access.admit(life.caller)
    settings = state.settings
    body = await read_json_body(request, settings.max_request_bytes, settings.http.body_timeout_s)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request(
            "model: is required (a router profile or a registry model)", param="model"
        )
    registry = state.registry.get()
    profile = registry.profile(model)
    if profile is not None:
        return await _serve_episode(request, state, registry, profile, body, life)
    spec = registry.model(model)
    if spec is not None:
        return await serve_passthrough(request, state, spec, body, life)
    raise model_not_found(model)


async def _serve_episode(
    request: Request,
    state: AppState,
    registry: Registry,
    profile: RouterProfile,
    body: dict[str, Any],
    life: RequestLifecycle,
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
    runner = state.runners.runner(registry, profile, cache=cache)
    run = runner.start(question, overrides, request_id=life.request_id)
    life.serving_episode(profile, run)
    fields = state.settings.stream.reasoning_fields
    if not chat.stream:
        await cancel_on_disconnect(request.receive, _play(run))
        result = run.result()
        content = wire.episode_completion(
            result.trace,
            answer=result.answer_text,
            reasoning=result.context.response_text,
            finish_reason=result.finish_reason,
            model=profile.name,
            fields=fields,
        )
        return Response(
            content, media_type="application/json", headers=wire.router_headers(result.trace)
        )
    life.streamed = True
    events = run.events()
    try:  # failures before the first byte still get a real status
        first = await cancel_on_disconnect(request.receive, anext(events))
    except BaseException:
        await events.aclose()
        raise
    include_usage = chat.stream_options is not None and chat.stream_options.include_usage
    chunks = wire.EpisodeChunks(
        life.request_id, profile.name, fields=fields, include_usage=include_usage
    )
    keepalive_s = state.settings.stream.keepalive_interval_s
    return EventStreamResponse(
        _episode_stream(first, events, chunks, life, keepalive_s),
        headers=wire.STREAM_HEADERS,
        finished=life.close,
    )


async def _play(run: EpisodeRun) -> None:
    async with aclosing(run.events()) as events:
        async for _ in events:
            pass


async def _episode_stream(
    first: EpisodeEvent,
    events: AsyncGenerator[EpisodeEvent, None],
    chunks: wire.EpisodeChunks,
    life: RequestLifecycle,
    keepalive_s: float,
) -> AsyncIterator[bytes]:
    try:
        yield chunks.role()
        for data in _event_bytes(chunks, first, life):
            yield data
        async with aclosing(_with_keepalive(first, events, keepalive_s)) as paced:
            async for event in paced:
                if event is None:
                    yield wire.KEEPALIVE
                    continue
                for data in _event_bytes(chunks, event, life):
                    yield data
    except Exception as exc:  # after the first byte, errors travel in the stream
        life.failed(exc)
        yield wire.error_event(classify(exc))
        yield wire.DONE
    finally:
        await aclose(events)


async def _with_keepalive(
    first: EpisodeEvent, events: AsyncGenerator[EpisodeEvent, None], interval_s: float
) -> AsyncGenerator[EpisodeEvent | None, None]:
    """The events after ``first``, and None whenever a route call (the only long silence
    between events once a turn streams) has kept the stream quiet for ``interval_s``.

    Only the wait after a ``RouteStarted`` runs in a task (a timed wait must not cancel the
    episode's own step); token deltas are read directly, at no extra cost."""
    slow = isinstance(first, RouteStarted)
    while True:
        if not slow:
            try:
                event = await anext(events)
            except StopAsyncIteration:
                return
        else:
            step = asyncio.ensure_future(anext(events))
            try:
                while not step.done():
                    done, _ = await asyncio.wait({step}, timeout=interval_s)
                    if not done:
                        yield None
                try:
                    event = step.result()
                except StopAsyncIteration:
                    return
            finally:
                if not step.done():
                    step.cancel()
                    with contextlib.suppress(BaseException):
                        await step
        slow = isinstance(event, RouteStarted)
        yield event


def _event_bytes(
    chunks: wire.EpisodeChunks, event: EpisodeEvent, life: RequestLifecycle
) -> list[bytes]:
    if isinstance(event, ReasoningDelta):
        life.first_token()
        return [chunks.reasoning(event.text)]
    if isinstance(event, AnswerDelta):
        life.first_token()
        return [chunks.content(event.text)]
    if isinstance(event, RouteStarted):
        route = {
            "event": "route_started",
            "index": event.index,
            "written_model": event.written_model,
            "model": event.model,
            "query": event.query,
        }
        return [chunks.router_event(route)]
    if isinstance(event, RouteFinished):
        route = {"event": "route_finished", "step": event.step.model_dump(mode="json")}
        return [chunks.router_event(route, event.observation)]
    assert isinstance(event, EpisodeFinished)
    result = event.result
    return list(chunks.end(result.trace, result.finish_reason))
