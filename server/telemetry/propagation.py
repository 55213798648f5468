"""W3C ``traceparent`` in and out of a request, while tracing is on.

:class:`TraceContextMiddleware` (installed only when tracing is on: nothing runs otherwise)
starts each chat request's :class:`~.context.RequestTraceContext` from the client's
``traceparent``/``tracestate`` and keeps it, as an :class:`ActiveTrace`, in a context
variable for the request's task and the tasks it starts. The policy engine client (an httpx
request hook, :func:`engine_request_hook`) and the upstream pool's sender
(:func:`upstream_trace_headers`) read it on every call: engine calls name the current policy
turn's span as their parent, upstream calls the current turn's upstream-call span (a
passthrough's, the request span), so an engine's or upstream's own spans (vLLM's
``--otlp-traces-endpoint``) join the request's trace.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from server.telemetry.context import RequestTraceContext

if TYPE_CHECKING:
    from router_model.episode.loop import EpisodeRun
    from server.telemetry.exporter import TraceExporter

_TRACEPARENT = b"traceparent"
_TRACESTATE = b"tracestate"
_CHAT_PATH = "/v1/chat/completions"


@dataclass(eq=False)
class ActiveTrace:
    """The trace of the request being served; ``run`` is its episode once one started (the
    turn in progress decides the parent span of each call)."""

    context: RequestTraceContext
    run: EpisodeRun | None = None
    # span id -> its headers: an episode makes about ten engine calls per turn's span
    _headers: dict[int | None, dict[str, str]] = field(default_factory=dict, repr=False)

    def _under(self, span_id: int | None) -> dict[str, str]:
        headers = self._headers.get(span_id)
        if headers is None:
            headers = self._headers[span_id] = self.context.headers(span_id)
        return headers

    def engine_headers(self) -> dict[str, str]:
        """For a policy engine call: under the current turn's span (before the first turn,
        the request span: prompt templating, tokenizing)."""
        run = self.run
        turn = run.turn if run is not None else None
        if turn is None:
            return self._under(None)
        return self._under(self.context.child_span_id("turn", turn.index))

    def upstream_headers(self) -> dict[str, str]:
        """For an upstream call: under the current turn's upstream-call span while that call
        is in flight; otherwise (a passthrough, a fallback) under the request span."""
        run = self.run
        turn = run.turn if run is not None else None
        if turn is not None and turn.upstream_started_ms is not None and turn.reply is None:
            return self._under(self.context.child_span_id("upstream", turn.index))
        return self._under(None)


# Module level, like ``server.logs.request_id_var``: a context variable must be created once;
# it holds nothing outside a traced request.
_ACTIVE: ContextVar[ActiveTrace | None] = ContextVar("router_r1_active_trace", default=None)


def current_trace() -> ActiveTrace | None:
    return _ACTIVE.get()


async def engine_request_hook(request: httpx.Request) -> None:
    """httpx ``request`` event hook of the policy engine client (installed when tracing is on)."""
    active = _ACTIVE.get()
    if active is not None:
        request.headers.update(active.engine_headers())


def upstream_trace_headers() -> dict[str, str] | None:
    """The trace headers of an upstream call made now (None outside a traced request)."""
    active = _ACTIVE.get()
    return None if active is None else active.upstream_headers()


class TraceContextMiddleware:
    """Pure ASGI: a chat request's trace context, from its headers (see the module docs).

    ``exporter`` returns the process's exporter (built by the lifespan, after this middleware
    was installed); None or a disabled one leaves the request untouched."""

    def __init__(self, app: ASGIApp, exporter: Callable[[], TraceExporter | None]) -> None:
        self.app = app
        self.exporter = exporter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(_CHAT_PATH):
            await self.app(scope, receive, send)
            return
        exporter = self.exporter()
        context = None
        if exporter is not None:
            parent = state = None
            for name, value in scope["headers"]:
                if name == _TRACEPARENT:
                    parent = value.decode("latin-1")
                elif name == _TRACESTATE:
                    state = value.decode("latin-1")
            context = exporter.start(parent, state)
        if context is None:
            await self.app(scope, receive, send)
            return
        token = _ACTIVE.set(ActiveTrace(context))
        try:
            await self.app(scope, receive, send)
        finally:
            _ACTIVE.reset(token)
