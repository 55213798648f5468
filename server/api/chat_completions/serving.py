"""Serving ``POST /v1/chat/completions``: a router profile runs an episode, a registry model is
passed through, anything else is a 404.

Every request is one :class:`~server.lifecycle.request.RequestLifecycle`: opened first,
closed exactly once (here for a plain response or a failure; by the stream's end for a
stream), whatever ends it. When an episode cannot answer, the profile's fallback model may
(:mod:`.fallback`): not streamed, its answer replaces the empty one; streamed, it follows the
policy's reasoning as content.
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
from router_model.episode.engine import EngineUnavailable
from router_model.episode.events import (
    AnswerDelta,
    EpisodeEvent,
    EpisodeFinished,
    ReasoningDelta,
    RouteFinished,
    RouteStarted,
)
from router_model.episode.loop import EpisodeRun
from router_model.episode.settings import PolicyOverrides, resolve_settings
from router_model.episode.trace import FallbackReason
from router_model.registry import ModelSpec, Registry, RouterProfile
from server.api.chat_completions import wire
from server.api.chat_completions.event_stream import EventStreamResponse
from server.api.chat_completions.fallback import (
    FALLBACK_HEADER,
    FallbackAnswer,
    StreamedAnswer,
    answer,
    cap_refusal,
    fallback_model,
    fallback_reason,
)
from server.api.chat_completions.passthrough import serve_passthrough
from server.api.chat_completions.request_caps import client_caps
from server.api.chat_completions.request_parsing import (
    client_stop,
    parse_chat_request,
    question_of,
    read_json_body,
    reject_unsupported,
)
from server.api.disconnect import cancel_on_disconnect
from server.auth.acl import check_model, check_profile
from server.deps import app_state, authenticate
from server.errors import bad_request, classify, error_response, model_not_found
from server.lifecycle.budget import episode_worst_case_usd, hold_s, passthrough_worst_case_usd
from server.lifecycle.request import RequestLifecycle, UpstreamCall
from server.request_id import request_id_of
from server.state import AppState
from server.upstream import UpstreamError
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
    caller = life.caller = authenticate(state, request.headers)
    settings = state.settings
    body = await read_json_body(request, settings.max_request_bytes, settings.http.body_timeout_s)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request(
            "model: is required (a router profile or a registry model)", param="model"
        )
    registry = state.registry.get()
    # what the key may use is checked before its limits count the request
    profile = registry.profile(model)
    if profile is not None:
        check_profile(caller, profile.name)
        return await _serve_episode(request, state, registry, profile, body, life)
    spec = registry.model(model)
    if spec is not None:
        check_model(caller, spec.name)
        access = state.access
        life.reservation = await access.admit(
            caller,
            reserve_usd=passthrough_worst_case_usd(spec, body)
            if access.holds_budget(caller)
            else 0,
            hold_s=hold_s(settings.upstream.passthrough_timeout_s),
        )
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
    caps = client_caps(body, request.headers)
    overrides = PolicyOverrides(
        temperature=chat.temperature,
        top_p=chat.top_p,
        max_tokens=chat.max_completion_tokens or chat.max_tokens,
        seed=chat.seed,
        stop=tuple(client_stop(chat)),
        max_cost_usd=caps.max_cost_usd,
        max_upstream_calls=caps.max_upstream_calls,
    )
    settings = resolve_settings(profile, overrides)
    assert life.caller is not None, "authenticated first"
    access = state.access
    life.reservation = await access.admit(  # the request's worst case is held
        life.caller,
        reserve_usd=(
            episode_worst_case_usd(registry, profile, settings, body)
            if access.holds_budget(life.caller)
            else 0
        ),
        hold_s=hold_s(settings.deadline_s, state.settings.upstream.passthrough_timeout_s),
    )
    cache = cache_wanted(request.headers.get(CACHE_HEADER), body)
    runner = state.runners.runner(registry, profile, cache=cache)
    run = runner.start(question, overrides, request_id=life.request_id)
    life.serving_episode(profile, run)
    fallback = _Fallback(state, registry, profile, body, run, life)
    fields = state.settings.stream.reasoning_fields
    if not chat.stream:
        return await _complete(request, fallback, fields)
    life.streamed = True
    events = run.events()
    first: EpisodeEvent | None = None
    failure: EngineUnavailable | None = None
    headers = dict(wire.STREAM_HEADERS)
    try:  # failures before the first byte still get a real status
        first = await cancel_on_disconnect(request.receive, anext(events))
    except EngineUnavailable as exc:
        await events.aclose()
        model = fallback_model(registry, profile)
        if fallback_reason(profile, error=exc) is None or model is None:
            raise
        failure = exc  # the fallback answers: the stream starts with it
        headers[FALLBACK_HEADER] = model.name
    except BaseException:
        await events.aclose()
        raise
    include_usage = chat.stream_options is not None and chat.stream_options.include_usage
    chunks = wire.EpisodeChunks(
        life.request_id, profile.name, fields=fields, include_usage=include_usage
    )
    keepalive_s = state.settings.stream.keepalive_interval_s
    return EventStreamResponse(
        _episode_stream(first, failure, events, chunks, fallback, keepalive_s),
        headers=headers,
        finished=life.close,
    )


async def _complete(
    request: Request, fallback: _Fallback, fields: wire.ReasoningFields
) -> Response:
    """A non-streamed episode (and its fallback, if it could not answer)."""
    run, profile = fallback.run, fallback.profile
    failure: EngineUnavailable | None = None
    try:
        await cancel_on_disconnect(request.receive, _play(run))
    except EngineUnavailable as exc:
        if fallback_reason(profile, error=exc) is None:
            raise
        failure = exc
    result = run.result()
    text, headers = result.answer_text, {}
    finish: str = result.finish_reason
    reason = fallback.reason(failure)
    if reason is not None:
        answered = await cancel_on_disconnect(request.receive, fallback.ask(reason, failure))
        if answered is None and failure is not None:
            raise failure
        if answered is not None:
            text, finish = answered.text, answered.finish_reason
            headers[FALLBACK_HEADER] = answered.model
    trace = fallback.life.trace_so_far()
    content = wire.episode_completion(
        trace,
        answer=text,
        reasoning=result.context.response_text,
        finish_reason=finish,
        model=profile.name,
        fields=fields,
    )
    return Response(
        content, media_type="application/json", headers={**wire.router_headers(trace), **headers}
    )


class _Fallback:
    """Asks the profile's fallback model for one request (see :mod:`.fallback`)."""

    def __init__(
        self,
        state: AppState,
        registry: Registry,
        profile: RouterProfile,
        body: dict[str, Any],
        run: EpisodeRun,
        life: RequestLifecycle,
    ) -> None:
        self.state, self.registry, self.profile = state, registry, profile
        self.body, self.run, self.life = body, run, life
        self.finish_reason: str | None = None  # set once a streamed fallback has answered

    def reason(self, error: BaseException | None) -> FallbackReason | None:
        return fallback_reason(self.profile, outcome=self.run.result().outcome, error=error)

    def _call(
        self, reason: FallbackReason, error: BaseException | None
    ) -> tuple[ModelSpec, UpstreamCall] | None:
        """The fallback call's record, or None when it must not be made (a cap: recorded)."""
        model = fallback_model(self.registry, self.profile)
        if model is None:
            return None
        call = self.life.serving_fallback(model, reason, None if error is None else str(error))
        refused = cap_refusal(self.run.settings.caps, self.run.result().trace, model, self.body)
        if refused is not None:
            call.status = refused
            return None
        return model, call

    async def ask(
        self, reason: FallbackReason, error: BaseException | None
    ) -> FallbackAnswer | None:
        """Its answer (not streamed), or None when it failed or was not asked."""
        found = self._call(reason, error)
        if found is None:
            return None
        model, call = found
        return await answer(self.state.upstream, model, self.body, call)

    async def stream(
        self, reason: FallbackReason, error: BaseException | None, chunks: wire.EpisodeChunks
    ) -> AsyncGenerator[bytes, None]:
        """Its answer as content chunks; ``self.finish_reason`` is set once it answered. A
        failure before its first delta ends quietly (nothing answered); after, it raises."""
        found = self._call(reason, error)
        if found is None:
            return
        model, call = found
        streamed = StreamedAnswer(self.state.upstream, model, self.body)
        sent = False
        try:
            async for text in streamed.deltas(call):
                self.life.first_token()
                sent = True
                yield chunks.content(text)
        except UpstreamError:
            if sent:
                raise
            return
        self.finish_reason = streamed.finish_reason


async def _play(run: EpisodeRun) -> None:
    async with aclosing(run.events()) as events:
        async for _ in events:
            pass


async def _episode_stream(
    first: EpisodeEvent | None,
    failure: EngineUnavailable | None,
    events: AsyncGenerator[EpisodeEvent, None],
    chunks: wire.EpisodeChunks,
    fallback: _Fallback,
    keepalive_s: float,
) -> AsyncIterator[bytes]:
    """The episode's chunks (``first`` is its first event; None when the engine already failed
    with ``failure``), then the fallback's answer when the episode could not answer."""
    life = fallback.life
    try:
        yield chunks.role()
        if first is not None:
            try:
                for data in _event_bytes(chunks, first, life):
                    yield data
                async with aclosing(_with_keepalive(first, events, keepalive_s)) as paced:
                    async for event in paced:
                        if event is None:
                            yield wire.KEEPALIVE
                            continue
                        for data in _event_bytes(chunks, event, life):
                            yield data
            except EngineUnavailable as exc:
                if fallback_reason(fallback.profile, error=exc) is None:
                    raise
                failure = exc
        finish: str = fallback.run.result().finish_reason
        reason = fallback.reason(failure)
        if reason is not None:
            async with aclosing(fallback.stream(reason, failure, chunks)) as answer_chunks:
                async for data in answer_chunks:
                    yield data
            if fallback.finish_reason is not None:
                finish = fallback.finish_reason
            elif failure is not None:
                raise failure
        for data in chunks.end(life.trace_so_far(), finish):
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
    assert isinstance(event, EpisodeFinished)  # the stream's end is written after it
    return []
