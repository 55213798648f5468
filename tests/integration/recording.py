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

    @property
    def native(self) -> bool:
        """llama-server's native ``/completion`` (else the OpenAI ``/v1/completions``)."""
        return self.path == "/completion"

    def _native_final(self) -> dict[str, Any]:
        """The reply (or the stream's last, ``"stop": true`` event) of a native completion."""
        if self.request.get("stream"):
            return [e for e in self.sse_events() if e.get("stop") is True][-1]
        return dict(self.json())

    def completion_text(self) -> str:
        """The generated text of a (streamed or not) completions reply, as the engine hands
        it to the loop: for llama-server, ``content`` plus the stop string it cut off (the
        turn keeps its closing tag)."""
        if self.native:
            final = self._native_final()
            if self.request.get("stream"):
                text = "".join(str(e.get("content") or "") for e in self.sse_events())
            else:
                text = str(final["content"])
            word = final.get("stopping_word") if final.get("stop_type") == "word" else ""
            return text + str(word or "")
        if self.request.get("stream"):
            return "".join(
                c.get("text") or "" for e in self.sse_events() for c in e.get("choices", ())
            )
        return str(self.json()["choices"][0]["text"])

    def completion_usage(self) -> dict[str, Any]:
        """``prompt_tokens`` and ``completion_tokens`` as the server counted them."""
        if self.native:
            final = self._native_final()
            return {
                "prompt_tokens": final["tokens_evaluated"],
                "completion_tokens": final["tokens_predicted"],
            }
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
