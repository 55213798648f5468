"""A router profile's fallback: a registry model answers the user's messages when the episode
cannot (the profile's ``fallback: {model, when: [...]}``).

The conditions: ``engine_unavailable`` (the policy engine failed, before or while the episode
played: every replica refused or timed out), ``no_answer`` (the episode ended without an
``<answer>``), ``deadline_exceeded`` (its deadline passed). The fallback model gets the whole
chat request as a passthrough would send it (the user's original messages and sampling
fields; the gateway's own ``router`` field removed), with the request's caps applied to its
worst case first. Its call is recorded in the request's lifecycle, so the trace, the cost and
the spend include the episode's calls and this one. When it answers, the response says so:
``router.outcome = "fallback"`` with ``router.fallback = {model, reason, ...}``, and the
``x-router-fallback: <model>`` header (a stream whose headers were already sent says it in
its last chunk only). When it fails, the request ends as it would have without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from router_model.episode.caps import RequestCaps
from router_model.episode.engine import EngineUnavailable
from router_model.episode.trace import FallbackReason, Outcome, RouterTrace
from router_model.registry import ModelSpec, Registry, RouterProfile
from server.lifecycle.budget import chat_worst_case_usd
from server.lifecycle.request import UpstreamCall
from server.upstream import UpstreamError, UpstreamPool
from server.upstream.errors import UpstreamBadResponseError, call_status
from server.upstream.sse import event_data, is_comment, is_done

FALLBACK_HEADER = "x-router-fallback"
GATEWAY_FIELDS = frozenset({"router"})  # request fields for the gateway, never forwarded


def fallback_reason(
    profile: RouterProfile, *, outcome: Outcome | None = None, error: BaseException | None = None
) -> FallbackReason | None:
    """The condition of ``profile.fallback`` that the episode's end meets, if any."""
    fallback = profile.fallback
    if fallback is None:
        return None
    reason: FallbackReason | None = None
    if isinstance(error, EngineUnavailable):
        reason = "engine_unavailable"
    elif error is None and outcome in ("no_answer", "deadline_exceeded"):
        reason = "no_answer" if outcome == "no_answer" else "deadline_exceeded"
    return reason if reason in fallback.when else None


def fallback_model(registry: Registry, profile: RouterProfile) -> ModelSpec | None:
    return None if profile.fallback is None else registry.model(profile.fallback.model)


def fallback_body(body: dict[str, Any], model: ModelSpec, *, stream: bool) -> dict[str, Any]:
    """The client's request as the fallback model gets it."""
    forwarded = {k: v for k, v in body.items() if k not in GATEWAY_FIELDS}
    forwarded["model"] = model.name
    forwarded["stream"] = stream
    if not stream:
        forwarded.pop("stream_options", None)
    return forwarded


def cap_refusal(
    caps: RequestCaps, trace: RouterTrace, model: ModelSpec, body: dict[str, Any]
) -> str | None:
    """Which cap of the request the fallback call would pass, after what the episode spent."""
    return caps.refusal(
        spent_usd=trace.totals.cost_usd,
        calls_made=trace.totals.upstream_calls,
        worst_case_usd=chat_worst_case_usd(model, body),
    )


@dataclass(frozen=True)
class FallbackAnswer:
    model: str
    text: str
    finish_reason: str


async def answer(
    pool: UpstreamPool, model: ModelSpec, body: dict[str, Any], call: UpstreamCall
) -> FallbackAnswer | None:
    """Ask the fallback model (not streamed); its answer, or None when the call failed. The
    call's record is filled in either way."""
    try:
        result = await pool.chat(model, fallback_body(body, model, stream=False))
    except UpstreamError as exc:
        call.status, call.error, call.attempts = call_status(exc), exc.message, exc.attempts
        return None
    usage = result.usage
    call.status, call.attempts = "ok", result.attempts
    call.latency_ms = result.latency_s * 1000
    call.prompt_tokens = usage.prompt_tokens if usage else 0
    call.completion_tokens = usage.completion_tokens if usage else 0
    call.cost_usd = result.cost_usd
    choices = result.body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else {}
    message = first.get("message") if isinstance(first, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    finish = first.get("finish_reason") if isinstance(first, dict) else None
    return FallbackAnswer(
        model.name,
        content if isinstance(content, str) else "",
        finish if isinstance(finish, str) else "stop",
    )


class StreamedAnswer:
    """The fallback model's answer as content deltas (:meth:`deltas`); ``finish_reason`` and the
    call's usage are known once they have all been read."""

    def __init__(self, pool: UpstreamPool, model: ModelSpec, body: dict[str, Any]) -> None:
        self._pool = pool
        self._model = model
        self._body = fallback_body(body, model, stream=True)
        self.finish_reason = "stop"

    async def deltas(self, call: UpstreamCall) -> AsyncIterator[str]:
        """Raises :class:`UpstreamError` when the call fails (before or after its first delta);
        the call's record is filled in either way."""
        try:
            stream = await self._pool.chat_stream(self._model, self._body)
        except UpstreamError as exc:
            call.status, call.error, call.attempts = call_status(exc), exc.message, exc.attempts
            raise
        call.attempts = stream.attempts
        finished = False
        try:
            async for event in stream.events():
                if is_done(event) or is_comment(event):
                    continue
                text, finish = _delta(event)
                if finish is not None:
                    self.finish_reason, finished = finish, True
                if text:
                    yield text
            if not (stream.done or finished):
                raise UpstreamBadResponseError(
                    f"{self._model.name}: the fallback stream ended before its end"
                )
        except UpstreamError as exc:
            call.status, call.error = call_status(exc), exc.message
            raise
        finally:
            await stream.aclose()
            if stream.usage is not None:
                call.prompt_tokens = stream.usage.prompt_tokens
                call.completion_tokens = stream.usage.completion_tokens
                call.cost_usd, call.usage_estimated = stream.cost_usd, stream.usage_estimated
        call.status = "ok"


def _delta(event: bytes) -> tuple[str, str | None]:
    """The content and finish reason of one chunk of an OpenAI chat stream."""
    data = event_data(event)
    try:
        chunk = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return "", None
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", None
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    finish = choices[0].get("finish_reason")
    return (content if isinstance(content, str) else ""), (
        finish if isinstance(finish, str) else None
    )
