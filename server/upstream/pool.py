"""The upstream pool: one shared HTTP client for every deployment, with the Router-R1 sub-query
call (never raises for upstream trouble) and the passthrough calls.

Every call goes the same way: the model's enforced limits (:mod:`.limits`: context length,
per-minute requests/tokens) are checked before anything is sent; then :mod:`.pipeline` picks a
healthy deployment, POSTs and retries what is safe to retry, until a 2xx response; then the
body is read (``route_call``, ``chat``) or handed on as a stream (``chat_stream``). The HTTP
fast path (aiohttp called directly) is :mod:`.sender`'s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport

from router_model.episode.route import UpstreamReply, UpstreamStatus
from router_model.registry import Deployment, ModelSpec, Registry
from router_model.usage import Usage
from server.upstream.breaker import BreakerState
from server.upstream.deployments import BreakerListener, Deployments
from server.upstream.errors import (
    UpstreamContextTooLongError,
    UpstreamError,
    UpstreamTimeoutError,
    one_line,
)
from server.upstream.failures import (
    CallFailure,
    body_read_failure,
    completion_text,
    error_fields,
    parse_json_object,
)
from server.upstream.limits import CapacityTicket, LimitGate, ModelLimiter
from server.upstream.pipeline import Failed, Opened, Pipeline, Progress
from server.upstream.result import UpstreamResult, forwarded_headers
from server.upstream.sender import Sender, dumps
from server.upstream.settings import UpstreamSettings
from server.upstream.stream import UpstreamStream
from server.upstream.transport import build_aiohttp_transport, build_client, uses_aiohttp


def _encoder(payload: dict[str, Any]) -> Callable[[Deployment], bytes]:
    """The request body for a deployment (its own upstream model id), encoded once each."""
    encoded: dict[str, bytes] = {}

    def encode(deployment: Deployment) -> bytes:
        content = encoded.get(deployment.upstream_model)
        if content is None:
            content = encoded[deployment.upstream_model] = dumps(
                {**payload, "model": deployment.upstream_model}
            )
        return content

    return encode


class UpstreamPool:
    """Calls the registry's upstream deployments through ONE shared ``httpx.AsyncClient``.

    ``registry_provider`` is called on every request (hot reload: swap the registry, the pool
    follows). Concurrency per deployment is bounded by a semaphore sized by the settings'
    ``max_connections_per_model`` or else its endpoint's ``max_connections``. The pool owns
    ``transport`` (default: aiohttp-backed) and closes it in :meth:`aclose`. ``limiter``
    enforces the models' per-minute limits (none: not enforced); ``on_breaker_change`` is told
    every circuit breaker transition; ``clock`` (monotonic seconds) drives the breakers;
    ``trace_headers`` (tracing on) gives each call its ``traceparent``.
    """

    def __init__(
        self,
        registry_provider: Callable[[], Registry],
        settings: UpstreamSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        limiter: ModelLimiter[Any] | None = None,
        on_breaker_change: BreakerListener | None = None,
        clock: Callable[[], float] = time.monotonic,
        trace_headers: Callable[[], dict[str, str] | None] | None = None,
    ) -> None:
        self.settings = settings = settings or UpstreamSettings()
        self._transport = (
            transport if transport is not None else build_aiohttp_transport(self.settings)
        )
        self._client = build_client(self.settings, self._transport)
        # The default transport was built here: the sender calls its aiohttp session directly.
        direct = transport is None and isinstance(self._transport, AiohttpTransport)
        sender = self._sender = Sender(
            settings,
            self._transport,
            dict(self._client.headers),
            direct=direct,
            trace_headers=trace_headers,
        )
        self._deployments = Deployments(
            settings.breaker_policy(), clock=clock, on_change=on_breaker_change
        )
        self._pipeline = Pipeline(settings, sender, self._deployments, registry_provider)
        self._limits = LimitGate(limiter)

    @property
    def client(self) -> httpx.AsyncClient:
        return self._client

    @property
    def uses_aiohttp(self) -> bool:
        return uses_aiohttp(self._client)

    @property
    def calls_aiohttp_directly(self) -> bool:
        """The fast path: the default transport's aiohttp session is called directly."""
        return self._sender.direct

    @property
    def deployments(self) -> Deployments:
        return self._deployments

    def breaker_states(self) -> dict[str, dict[str, BreakerState]]:
        """model -> deployment -> ``closed`` | ``half_open`` | ``open`` (deployments called
        at least once since the process started)."""
        return self._deployments.states()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> UpstreamPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- the Router-R1 call

    async def route_call(self, model: ModelSpec, prompt: str, *, max_tokens: int) -> UpstreamReply:
        """One Router-R1 sub-query: the rendered ``prompt`` as the single user message, with the
        model's registry sampling defaults. Never raises for upstream trouble (only
        ``CancelledError`` propagates); the whole call, retries included, is bounded by
        ``settings.total_timeout_s``. Refused without a call: ``context_too_long``,
        ``rate_limited`` (the model's limits), ``unavailable`` (every breaker open)."""
        started = time.perf_counter()
        progress = Progress()
        total = self.settings.total_timeout_s

        def failed(failure: CallFailure) -> UpstreamReply:
            return UpstreamReply(
                model=model.name,
                status=failure.status,
                text=None,
                latency_s=time.perf_counter() - started,
                attempts=progress.attempts,
                error=one_line(f"{model.name}: {failure.message}", 300),
                http_status=failure.http_status,
                deployment=progress.deployment,
            )

        ticket: CapacityTicket | None = None
        estimate = 0
        try:
            if self._limits.applies(model):
                ticket, estimate = await self._limits.admit_route_call(model, prompt, max_tokens)
        except UpstreamError as refusal:
            status: UpstreamStatus = "rate_limited"
            if isinstance(refusal, UpstreamContextTooLongError):
                status = "context_too_long"
            return UpstreamReply(model.name, status, None, attempts=0, error=refusal.message)
        defaults = model.defaults
        payload: dict[str, Any] = {
            "messages": [{"role": "user", "content": prompt}],
            "temperature": defaults.temperature,
            "top_p": defaults.top_p,
            "max_tokens": max_tokens,
            "stream": False,
        }
        if defaults.seed is not None:
            payload["seed"] = defaults.seed
        reply = await self._route_call(model, payload, total, progress, failed, started)
        if ticket is not None:
            used = reply.prompt_tokens + reply.completion_tokens
            await self._limits.finished(ticket, used or (estimate if reply.attempts else 0))
        return reply

    async def _route_call(
        self,
        model: ModelSpec,
        payload: dict[str, Any],
        total: float,
        progress: Progress,
        failed: Callable[[CallFailure], UpstreamReply],
        started: float,
    ) -> UpstreamReply:
        try:
            async with asyncio.timeout(total) as deadline:
                opened = await self._pipeline.open(
                    model, _encoder(payload), False, deadline.when(), progress
                )
                try:
                    raw = await opened.response.aread()
                except Exception as exc:
                    return failed(body_read_failure(exc))
                finally:
                    await opened.close()
        except Failed as exc:
            return failed(exc.failure)
        except TimeoutError:
            last = f" (last: {progress.last.message})" if progress.last else ""
            return failed(CallFailure("timeout", f"no reply within {total:g} s{last}"))
        parsed = parse_json_object(raw)
        if isinstance(parsed, CallFailure):
            return failed(parsed)
        text, finish_reason, problem = completion_text(parsed)
        if problem is not None:
            return failed(problem)
        usage = Usage.from_json(parsed.get("usage"))
        return UpstreamReply(
            model=model.name,
            status="ok",
            text=text,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cost_usd=model.pricing_of(opened.deployment).cost_of(usage) if usage else 0.0,
            latency_s=time.perf_counter() - started,
            attempts=opened.attempts,
            error=None,
            http_status=opened.response.status_code,
            usage_missing=usage is None,
            finish_reason=finish_reason,
            deployment=opened.deployment.name,
        )

    # ----------------------------------------------------------------- passthrough

    async def chat(
        self, model: ModelSpec, body: dict[str, Any], *, prompt_tokens: int | None = None
    ) -> UpstreamResult:
        """Forward a non-streamed chat completion request, only ``model`` replaced by the
        deployment's upstream id. Raises :class:`UpstreamError` subclasses (after retries;
        refusals of the model's limits before any call). ``prompt_tokens``: the caller's
        estimate of the prompt, if it has one (for the limits)."""
        if body.get("stream"):
            raise ValueError("chat() forwards non-streamed requests; use chat_stream()")
        started = time.perf_counter()
        ticket: CapacityTicket | None = None
        estimate = 0
        if self._limits.applies(model):  # (most models: no awaited no-op on the hot path)
            ticket, estimate = await self._limits.admit_passthrough(model, body, prompt_tokens)
        progress = Progress()
        limit = self.settings.passthrough_timeout_s
        try:
            async with asyncio.timeout(limit) as deadline:
                opened = await self._pipeline.open(
                    model, _encoder(body), False, deadline.when(), progress
                )
                try:
                    raw = await opened.response.aread()
                except Exception as exc:
                    raise body_read_failure(exc).to_error(opened.attempts) from exc
                finally:
                    await opened.close()
        except Failed as exc:
            if ticket is not None:
                await self._limits.finished(ticket, estimate if exc.failure.sent else 0)
            raise exc.failure.to_error(exc.attempts) from None
        except TimeoutError:
            if ticket is not None:
                await self._limits.finished(ticket, estimate)
            raise UpstreamTimeoutError(
                f"{model.name}: no reply within {limit:g} s", attempts=progress.attempts
            ) from None
        parsed = parse_json_object(raw)
        if isinstance(parsed, CallFailure):
            raise parsed.to_error(opened.attempts)
        usage = Usage.from_json(parsed.get("usage"))
        if ticket is not None:
            await self._limits.finished(ticket, usage.total_tokens if usage else estimate)
        return UpstreamResult(
            model=model.name,
            status_code=opened.response.status_code,
            body=parsed,
            content=raw,
            headers=forwarded_headers(opened.response.headers),
            latency_s=time.perf_counter() - started,
            attempts=opened.attempts,
            usage=usage,
            cost_usd=model.pricing_of(opened.deployment).cost_of(usage) if usage else 0.0,
            deployment=opened.deployment.name,
        )

    async def chat_stream(
        self, model: ModelSpec, body: dict[str, Any], *, prompt_tokens: int | None = None
    ) -> UpstreamStream:
        """Open a streamed chat completion (``stream: true``; ``stream_options.include_usage``
        forced on so usage can be accounted). Errors before the first byte raise
        :class:`UpstreamError` subclasses (after retries); ``settings.passthrough_timeout_s``
        bounds the wait for the response headers. The caller must close the returned stream."""
        started = time.perf_counter()
        ticket: CapacityTicket | None = None
        estimate = 0
        if self._limits.applies(model):  # (most models: no awaited no-op on the hot path)
            ticket, estimate = await self._limits.admit_passthrough(model, body, prompt_tokens)
        options = body.get("stream_options")
        client_requested_usage = isinstance(options, dict) and options.get("include_usage") is True
        payload = {
            **body,
            "stream": True,
            "stream_options": {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            },
        }
        encode = _encoder(payload)
        progress = Progress()
        limit = self.settings.passthrough_timeout_s
        opened: Opened | None = None
        try:
            async with asyncio.timeout(limit) as deadline:
                stream_deadline = deadline.when()
                opened = await self._pipeline.open(model, encode, True, stream_deadline, progress)
                if "json" in opened.response.headers.get("content-type", ""):
                    await _refuse_json_answer(opened)
        except BaseException as exc:
            if opened is not None:
                await opened.close()
            await self._limits.finished(ticket, estimate if progress.attempts else 0)
            if isinstance(exc, Failed):
                raise exc.failure.to_error(exc.attempts) from None
            if isinstance(exc, TimeoutError):
                raise UpstreamTimeoutError(
                    f"{model.name}: no response within {limit:g} s", attempts=progress.attempts
                ) from None
            if isinstance(exc, httpx.HTTPError):
                raise body_read_failure(exc).to_error(progress.attempts) from exc
            raise
        endpoint = self._pipeline.endpoint_of(opened.deployment)

        limits = self._limits

        async def done(usage: Usage | None) -> None:
            await limits.finished(ticket, usage.total_tokens if usage else estimate)

        return UpstreamStream(
            model=model,
            response=opened.response,
            release=opened.release,
            client_requested_usage=client_requested_usage,
            attempts=opened.attempts,
            latency_s=time.perf_counter() - started,
            prompt_bytes=len(encode(opened.deployment)),
            deadline=stream_deadline,
            timeout_s=limit,
            idle_timeout_s=self.settings.stream_read_timeout(endpoint) if endpoint else 0.0,
            pricing=model.pricing_of(opened.deployment),
            deployment=opened.deployment.name,
            on_done=done if ticket is not None else None,
        )


async def _refuse_json_answer(opened: Opened) -> None:
    """An upstream that answered a stream request with JSON (it ignored ``stream``, or it is
    an error body): a bad response."""
    media_type = opened.response.headers.get("content-type", "")
    raw = await opened.response.aread()
    message, _ = error_fields(parse_json_object(raw))
    failure = CallFailure(
        "bad_response", message or f"the upstream answered a stream request with {media_type}"
    )
    raise Failed(failure, opened.attempts, opened.deployment.name)
