"""An httpx transport that forwards to the real network and records every exchange.

The gateway's engine and upstream clients are given one of these in the integration tests,
so a test sees exactly the bodies the engine received (token ids) and what came back.

Each exchange is tagged with the episode it belongs to: the value :data:`EPISODE` holds in
the task that sent it. The gateway runs in-process (ASGI), in the task of the client call,
so a test that sets :data:`EPISODE` before each request can tell concurrent episodes'
exchanges apart, which their bodies alone cannot (two episodes may send the same
sub-query to the same model)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx

EPISODE: ContextVar[str | None] = ContextVar("recorded_episode", default=None)
"""The episode an exchange sent from the current task belongs to (None: untagged)."""


@dataclass
class Exchange:
    method: str
    url: httpx.URL
    request: Any
    status: int = 0
    body: bytearray = field(default_factory=bytearray)
    episode: str | None = field(default_factory=EPISODE.get)

    @property
    def path(self) -> str:
        return self.url.path

    def json(self) -> Any:
        return json.loads(bytes(self.body))

    def sse_events(self) -> list[dict[str, Any]]:
        """The JSON events of a server-sent-events body (``[DONE]`` left out)."""
        events = []
        for line in bytes(self.body).decode().splitlines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                events.append(json.loads(line[5:]))
        return events

    def completion_text(self) -> str:
        """The generated text of a (streamed or not) completions reply."""
        if self.request.get("stream"):
            return "".join(
                c.get("text") or "" for e in self.sse_events() for c in e.get("choices", ())
            )
        return str(self.json()["choices"][0]["text"])

    def completion_usage(self) -> dict[str, Any]:
        if self.request.get("stream"):
            usage = [e["usage"] for e in self.sse_events() if e.get("usage")]
            return dict(usage[-1])
        return dict(self.json()["usage"])


class _Tee(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, sink: bytearray) -> None:
        self._inner = inner
        self._sink = sink

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._sink.extend(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread()
        exchange = Exchange(request.method, request.url, json.loads(content) if content else None)
        self.exchanges.append(exchange)
        response = await self._inner.handle_async_request(request)
        exchange.status = response.status_code
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Tee(response.stream, exchange.body),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()

    def to(self, path: str, port: int | None = None) -> list[Exchange]:
        return [
            e for e in self.exchanges if e.path == path and (port is None or e.url.port == port)
        ]
