"""Faults injected in front of any policy-engine fake (or any ASGI app), per request and path.

``EngineFaults(FakeVLLM(...).app)`` passes every request through unchanged, except those a
scripted fault applies to: :meth:`EngineFaults.script` queues faults for a path (``/tokenize``,
``/v1/completions``, ...), taken one per request in order. Faults:

- :class:`Cut`: the response starts as the app sends it, then the connection is reset after
  ``after_events`` SSE events (or body chunks): an engine killed mid-stream. Over TCP only
  (served by uvicorn; in-process there is no connection to reset, and the ASGI transport
  buffers the body anyway).
- :class:`Malformed`: a 200 whose body is not what the engine API promises (not JSON).
- :class:`Slow`: the response is held back ``delay_s`` before it starts.
- :class:`Fail`: an HTTP error status with the OpenAI envelope, instead of the app;
- :class:`Pass`: no fault for this request (to fault the second one: ``Pass(), Cut()``).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.fakes.asgi_wire import reset_connection, socket_transport_of


@dataclass(frozen=True)
class Cut:
    after_events: int = 1


@dataclass(frozen=True)
class Malformed:
    body: bytes = b"<html>upstream connect error or disconnect/reset before headers</html>"
    content_type: str = "application/json"


@dataclass(frozen=True)
class Slow:
    delay_s: float


@dataclass(frozen=True)
class Fail:
    status: int


@dataclass(frozen=True)
class Pass:
    pass


Fault = Cut | Malformed | Slow | Fail | Pass


class EngineFaults:
    """An ASGI app: ``app`` with the scripted faults applied (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._queues: dict[str, deque[Fault]] = {}
        self.applied: list[tuple[str, Fault]] = []

    def script(self, path: str, *faults: Fault) -> EngineFaults:
        self._queues.setdefault(path, deque()).extend(faults)
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        queue = self._queues.get(scope.get("path", "")) if scope["type"] == "http" else None
        if not queue:
            await self.app(scope, receive, send)
            return
        fault = queue.popleft()
        self.applied.append((scope["path"], fault))
        if isinstance(fault, Fail):
            body = {"error": {"message": f"scripted {fault.status}", "type": "server_error"}}
            await _respond(send, fault.status, json.dumps(body).encode(), "application/json")
        elif isinstance(fault, Malformed):
            await _respond(send, 200, fault.body, fault.content_type)
        elif isinstance(fault, Slow | Pass):
            if isinstance(fault, Slow):
                await asyncio.sleep(fault.delay_s)
            await self.app(scope, receive, send)
        else:
            await self._cut(fault, scope, receive, send)

    async def _cut(self, fault: Cut, scope: Scope, receive: Receive, send: Send) -> None:
        transport = socket_transport_of(send)
        assert transport is not None, "Cut needs a real connection: serve the app over TCP"
        events = 0

        async def cutting(message: Message) -> None:
            nonlocal events
            if message["type"] != "http.response.body" or not message.get("body"):
                await send(message)
                return
            if events >= fault.after_events:
                reset_connection(transport)
                raise _Killed
            events += 1
            await send(message)

        try:
            await self.app(scope, receive, cutting)
        except _Killed:
            while (await receive())["type"] != "http.disconnect":
                pass


class _Killed(Exception):
    """The connection was reset: the wrapped app's response ends here."""


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
