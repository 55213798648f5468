"""The gateway in-process, driven by the official ``openai`` SDK, with fake engine and upstreams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import openai
import pytest
from fastapi import FastAPI

from router_model.registry import Registry
from server.app import create_app
from server.settings import Settings
from tests.fakes.registry import default_registry
from tests.fakes.upstream_server import FakeUpstream
from tests.fakes.vllm_server import FakeVLLM
from tests.servers.in_process import sdk_client


@dataclass
class Gateway:
    app: FastAPI
    client: openai.AsyncOpenAI
    http: httpx2.AsyncClient  # raw access to the same app (headers, bodies, bad requests)
    engine: FakeVLLM
    upstream: FakeUpstream


GatewayFactory = Callable[..., AbstractAsyncContextManager[Gateway]]
"""``gateway(engine, upstream, registry, **settings)``: the gateway running, as a context."""


@asynccontextmanager
async def running_gateway(
    engine: FakeVLLM | None = None,
    upstream: FakeUpstream | None = None,
    registry: Registry | None = None,
    **settings: Any,
) -> AsyncIterator[Gateway]:
    engine = engine or FakeVLLM()
    upstream = upstream or FakeUpstream()
    defaults: dict[str, Any] = {"upstream_backoff_base_s": 0.001, "upstream_total_timeout_s": 2.0}
    app = create_app(
        Settings.from_flat({**defaults, **settings}),
        registry=registry or default_registry(),
        engine_transport=httpx.ASGITransport(app=engine.app),
        upstream_transport=httpx.ASGITransport(app=upstream.app),
    )
    async with sdk_client(app) as (client, http):
        yield Gateway(app, client, http, engine, upstream)


@pytest.fixture
def gateway() -> GatewayFactory:
    return running_gateway
