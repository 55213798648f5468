"""An OpenAI-compatible upstream that misbehaves on demand, one scripted behaviour per request.

Serves ``POST /v1/chat/completions`` (plain and ``stream: true``) for any model. Each request
takes the next behaviour scripted for its model (:meth:`MisbehavingUpstream.script`), else
the one for any model, else ``default`` (a well-behaved :class:`Reply`); a rule
(:meth:`MisbehavingUpstream.rule`) decides first when set. Behaviours:

- :class:`Reply`: a completion (or SSE stream: role chunk, one chunk per word, finish chunk,
  usage chunk when asked for, ``[DONE]``) with chosen text (injected tags and special-token
  strings are just text), usage, extra raw header bytes (``café €`` as UTF-8), a delay before
  the headers, a pause between chunks (a *drip*), and how it ends: ``done``; ``eof`` (a clean
  end of the HTTP response without a finish reason or ``[DONE]``; for a plain reply, JSON
  cut in the middle); ``stall`` (silence, after ``cut_after`` chunks: 0 = right after the
  headers); ``reset`` (the connection reset after ``cut_after`` chunks);
- :class:`Status`: an HTTP error with the OpenAI envelope and an optional ``Retry-After``;
- :class:`Hang`: nothing at all, not even headers;
- :class:`Reset`: the connection reset instead of any response;
- :class:`Garbage`: a 2xx whose body is not JSON; :class:`TruncatedJson`: JSON cut short.

Two ways to reach it. Over TCP: ``async with upstream.served() as base_url`` runs it under a
real uvicorn on a free loopback port in the test's event loop, so the client's real
transport, its read timeouts and real connection resets (RST, via ``SO_LINGER`` 0) apply.
In-process: ``httpx.ASGITransport(app=upstream)``, for behaviours that need no socket (the
ASGI transport buffers whole responses, so stalls and drips have no timing there, and a
reset is raised as the httpx error a client would see: ``ConnectError`` before the request
was sent, ``RemoteProtocolError`` after).

Every request is recorded (:attr:`MisbehavingUpstream.received`) with the behaviour it got
and the usage the fake reported (``None`` when it sent none), so tests can check spend
against what the upstream actually reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from tests.fakes.asgi_wire import (
    left_within,
    lifespan,
    read_body,
    reset_connection,
    send_body,
    send_json,
    send_start,
    socket_transport_of,
    until_disconnect,
)
from tests.fakes.misbehaviour import (
    HANG_LIMIT_S,
    Behaviour,
    Garbage,
    Hang,
    Received,
    Reply,
    Reset,
    Rule,
    Status,
    TruncatedJson,
)
from tests.servers.uvicorn_server import serving

__all__ = [
    "Behaviour",
    "Garbage",
    "Hang",
    "MisbehavingUpstream",
    "Received",
    "Reply",
    "Reset",
    "Rule",
    "Status",
    "TruncatedJson",
    "reset_connection",
    "socket_transport_of",
]


class MisbehavingUpstream:
    """See the module docstring. Call it as an ASGI app, or :meth:`served` over TCP."""

    def __init__(self, default: Behaviour | None = None) -> None:
        self.default: Behaviour = default or Reply()
        self.received: list[Received] = []
        self._queues: dict[str | None, deque[Behaviour]] = {}
        self._rule: Rule | None = None
        self._released = asyncio.Event()

    # ------------------------------------------------------------------ scripting

    def script(self, *behaviours: Behaviour, model: str | None = None) -> MisbehavingUpstream:
        """The next requests (for ``model``'s upstream id, or any model) get these, in order."""
        self._queues.setdefault(model, deque()).extend(behaviours)
        return self

    def rule(self, rule: Rule | None) -> MisbehavingUpstream:
        """``rule(request)`` picks the behaviour of every request (None: the script decides)."""
        self._rule = rule
        return self

    def calls_to(self, model: str) -> list[Received]:
        return [r for r in self.received if r.model == model]

    def release(self) -> None:
        """End every hang and stall now (before the server stops)."""
        self._released.set()

    def _behaviour(self, request: Received) -> Behaviour:
        if self._rule is not None:
            chosen = self._rule(request)
            if chosen is not None:
                return chosen
        for key in (request.model, None):
            queue = self._queues.get(key)
            if queue:
                return queue.popleft()
        return self.default

    # ------------------------------------------------------------------ serving

    @asynccontextmanager
    async def served(self) -> AsyncIterator[str]:
        """Serve over TCP (uvicorn, this event loop); yields the OpenAI base URL."""
        async with serving(self) as port:
            try:
                yield f"http://127.0.0.1:{port}/v1"
            finally:
                self.release()

    def transport(self) -> httpx.ASGITransport:
        """An in-process transport reaching this app."""
        return httpx.ASGITransport(app=self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] != "POST" or not scope["path"].endswith("/chat/completions"):
            await send_json(send, 404, {"error": {"message": "not found", "type": "not_found"}})
            return
        socket_transport = socket_transport_of(send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = json.loads(await read_body(receive) or b"{}")
        request = Received(model=str(body.get("model")), body=body, headers=headers)
        self.received.append(request)
        behaviour = request.behaviour = self._behaviour(request)
        client_left = asyncio.ensure_future(until_disconnect(receive))
        try:
            await self._perform(behaviour, request, socket_transport, client_left, send)
        finally:
            client_left.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await client_left

    async def _perform(
        self,
        behaviour: Behaviour,
        request: Received,
        socket_transport: asyncio.Transport | None,
        client_left: asyncio.Future[None],
        send: Send,
    ) -> None:
        if isinstance(behaviour, Reset):
            await self._reset(
                socket_transport, client_left, before_request=behaviour.before_request
            )
            return
        if isinstance(behaviour, Hang):
            await self._wait_out(client_left)
            return
        if isinstance(behaviour, Status):
            headers = {"retry-after": behaviour.retry_after} if behaviour.retry_after else {}
            envelope = {
                "error": {
                    "message": f"{behaviour.message} ({behaviour.status})",
                    "type": "rate_limit_error" if behaviour.status == 429 else "server_error",
                    "param": None,
                    "code": None,
                }
            }
            await send_json(send, behaviour.status, envelope, headers)
        elif isinstance(behaviour, Garbage):
            await send_start(send, 200, behaviour.content_type)
            await send_body(send, behaviour.body, more=False)
        elif isinstance(behaviour, TruncatedJson):
            await send_start(send, 200, "application/json")
            await send_body(
                send, b'{"id": "chatcmpl-cut", "object": "chat.completion", "choi', False
            )
        elif request.stream:
            await self._stream(behaviour, request, socket_transport, client_left, send)
            return
        else:
            await self._plain(behaviour, request, socket_transport, client_left, send)
            return
        request.finished = True

    async def _plain(
        self,
        reply: Reply,
        request: Received,
        socket_transport: asyncio.Transport | None,
        client_left: asyncio.Future[None],
        send: Send,
    ) -> None:
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        payload: dict[str, Any] = {
            "id": "chatcmpl-misbehaving",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": reply.text},
                }
            ],
        }
        if reply.send_usage:
            payload["usage"] = reply.usage
        raw = json.dumps(payload, ensure_ascii=False).encode()
        await send_start(send, 200, "application/json", reply.headers)
        if reply.end == "stall":
            await self._wait_out(client_left)
            return
        if reply.end == "reset":
            await self._reset(socket_transport, client_left, before_request=False)
            return
        if reply.end == "eof":
            await send_body(send, raw[: len(raw) // 2], more=False)
            request.finished = True
            return
        elif reply.chunk_interval_s:
            pieces = [raw[i : i + 16] for i in range(0, len(raw), 16)]
            for piece in pieces:
                if await left_within(client_left, reply.chunk_interval_s):
                    return
                await send_body(send, piece, more=True)
            await send_body(send, b"", more=False)
        else:
            await send_body(send, raw, more=False)
        request.reported_usage = payload.get("usage")  # sent in full
        request.finished = True

    async def _stream(
        self,
        reply: Reply,
        request: Received,
        socket_transport: asyncio.Transport | None,
        client_left: asyncio.Future[None],
        send: Send,
    ) -> None:
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            payload = {
                "id": "chatcmpl-misbehaving",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": request.model,
                "choices": choices,
                **extra,
            }
            return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"

        def delta(content: dict[str, str], finish: str | None = None) -> bytes:
            return event([{"index": 0, "delta": content, "finish_reason": finish}])

        await send_start(send, 200, "text/event-stream", reply.headers)
        await send_body(send, delta({"role": "assistant", "content": ""}), more=True)
        words = reply.words
        cut = len(words) if reply.cut_after is None else min(reply.cut_after, len(words))
        for word in words[:cut]:
            if reply.chunk_interval_s and await left_within(client_left, reply.chunk_interval_s):
                return  # a drip stops when nobody listens any more
            await send_body(send, delta({"content": word}), more=True)
        if reply.end == "stall":
            await self._wait_out(client_left)
            return
        if reply.end == "reset":
            await self._reset(socket_transport, client_left, before_request=False)
            return
        if reply.end == "eof":  # a clean end of the response, but not of the completion
            await send_body(send, b"", more=False)
            request.finished = True
            return
        await send_body(send, delta({}, "stop"), more=True)
        if request.wants_usage and reply.send_usage:
            request.reported_usage = reply.usage
            await send_body(send, event([], usage=reply.usage), more=True)
        await send_body(send, b"data: [DONE]\n\n", more=False)
        request.finished = True

    async def _wait_out(self, client_left: asyncio.Future[None]) -> None:
        """Until the client leaves, :meth:`release`, or HANG_LIMIT_S."""
        released = asyncio.ensure_future(self._released.wait())
        try:
            await asyncio.wait(
                {released, client_left},  # type: ignore[type-var]
                timeout=HANG_LIMIT_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            released.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await released

    async def _reset(
        self,
        socket_transport: asyncio.Transport | None,
        client_left: asyncio.Future[None],
        *,
        before_request: bool,
    ) -> None:
        if socket_transport is None:  # in-process: what a client's transport raises
            if before_request:
                raise httpx.ConnectError("misbehaving upstream: connection reset by peer")
            raise httpx.RemoteProtocolError("misbehaving upstream: server disconnected")
        reset_connection(socket_transport)
        await client_left  # uvicorn notices; it then sends nothing more
