"""The gateway in-process with tracing on (spans into memory, or OTLP when ``OTEL_*`` is set),
its policy engine's and upstreams' requests recorded with their headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
import openai
from fastapi import FastAPI
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.types import ASGIApp, Receive, Scope, Send

from server.app import create_app
from server.settings import Settings
from tests.fakes.registry import default_registry
from tests.fakes.upstream_server import FakeUpstream
from tests.fakes.vllm_server import FakeVLLM
from tests.servers.in_process import sdk_client

QWEN = "qwen/qwen2.5-7b-instruct"
QUESTION = [{"role": "user", "content": "Who wrote the novel War and Peace?"}]
ROUTE_QWEN = (
    "<think>I should ask.</think>\n<search> Qwen2.5-7B-Instruct:who wrote war and peace </search>"
)
ANSWER = "<think>Now I know.</think>\n<answer> Leo Tolstoy </answer>"


@dataclass
class HeaderLog:
    """An ASGI wrapper's record: (path, headers) of every request the app received."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
                self.requests.append((scope["path"], headers))
            await app(scope, receive, send)

        return recording

    def traceparents(self) -> list[str | None]:
        """Of the requests made for a chat request (health polls run outside any request)."""
        return [h.get("traceparent") for path, h in self.requests if path != "/health"]


@dataclass
class TracedGateway:
    app: FastAPI
    client: openai.AsyncOpenAI
    http: httpx2.AsyncClient
    engine: FakeVLLM
    upstream: FakeUpstream
    engine_log: HeaderLog
    spans: InMemorySpanExporter


@asynccontextmanager
async def traced_gateway(
    engine: FakeVLLM,
    upstream: FakeUpstream | None = None,
    *,
    traced: bool = True,
    processor: SpanProcessor | None = None,
    **settings: Any,
) -> AsyncIterator[TracedGateway]:
    """``traced``: spans go to the in-memory exporter (``gw.spans``) unless ``processor`` is
    given; False: tracing is off (unless ``OTEL_*`` turns it on)."""
    upstream = upstream or FakeUpstream()
    memory = InMemorySpanExporter()
    if traced and processor is None:
        processor = SimpleSpanProcessor(memory)
    engine_log = HeaderLog()
    defaults: dict[str, Any] = {"upstream_backoff_base_s": 0.001, "upstream_total_timeout_s": 2.0}
    app = create_app(
        Settings.from_flat({**defaults, **settings}),
        registry=default_registry(),
        engine_transport=httpx.ASGITransport(app=engine_log.wrap(engine.app)),
        upstream_transport=httpx.ASGITransport(app=upstream.app),
        span_processor=processor if traced else None,
    )
    async with sdk_client(app) as (client, http):
        yield TracedGateway(app, client, http, engine, upstream, engine_log, memory)
