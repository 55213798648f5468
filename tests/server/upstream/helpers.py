"""Helpers: a tiny registry, fast pool settings, and a real aiohttp stub server on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from aiohttp import web

from router_model.registry import (
    Deployment,
    Endpoint,
    ModelSpec,
    Pricing,
    Registry,
    RegistryFile,
    SamplingDefaults,
)
from server.upstream import UpstreamSettings

FAST = UpstreamSettings(backoff_base_s=0.001, backoff_cap_s=0.05, total_timeout_s=5.0)


def make_registry(
    base_url: str = "http://upstream.test/v1",
    *,
    api_key_env: str | None = None,
    max_connections: int = 100,
    read_timeout_s: float = 5.0,
) -> Registry:
    endpoint = Endpoint(
        base_url=base_url,
        api_key_env=api_key_env,
        max_connections=max_connections,
        read_timeout_s=read_timeout_s,
        connect_timeout_s=1.0,
    )
    models = (
        ModelSpec(  # type: ignore[call-arg]  # deployments: filled from endpoint
            name="Qwen2.5-7B-Instruct",
            description="Qwen.",
            endpoint="e",
            upstream_model="qwen/qwen2.5-7b-instruct",
            pricing=Pricing(input_per_1m=0.3, output_per_1m=0.6),
        ),
        ModelSpec(  # type: ignore[call-arg]  # deployments: filled from endpoint
            name="Gemma-2-27B-Instruct",
            description="Gemma.",
            endpoint="e",
            upstream_model="google/gemma-2-27b-it",
            pricing=Pricing(input_per_1m=0.8, output_per_1m=0.8),
            defaults=SamplingDefaults(temperature=0.1),
        ),
    )
    return Registry(RegistryFile(endpoints={"e": endpoint}, models=models))


def completion(
    text: str = "Paris", usage: dict[str, int] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "qwen/qwen2.5-7b-instruct",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        **extra,
    }
    if usage is not None:
        body["usage"] = usage
    return body


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=orjson.dumps(body),
        headers={"content-type": "application/json", **(headers or {})},
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StubServer:
    """A real aiohttp server on a free port; ``handler`` answers POST /v1/chat/completions."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(orjson.loads(await request.read()))
        self.headers.append(dict(request.headers))
        assert self.handler is not None
        return await self.handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._dispatch)
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.1, access_log=None
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def deployed_registry(
    *targets: tuple[str, str],
    weights: tuple[float, ...] = (),
    pricing: tuple[Pricing | None, ...] = (),
    **model: Any,
) -> Registry:
    """One model, ``Multi``, with a deployment per (name, base_url) target (upstream id
    ``m-<name>``), each on an endpoint of that name."""
    endpoints = {
        name: Endpoint(base_url=url, connect_timeout_s=1.0, read_timeout_s=5.0)
        for name, url in targets
    }
    deployments = tuple(
        Deployment(
            name=name,
            endpoint=name,
            upstream_model=f"m-{name}",
            weight=weights[i] if i < len(weights) else 1.0,
            pricing=pricing[i] if i < len(pricing) else None,
        )
        for i, (name, _) in enumerate(targets)
    )
    spec = ModelSpec(
        name="Multi",
        description="A model served by several deployments.",
        deployments=deployments,
        pricing=Pricing(input_per_1m=1.0, output_per_1m=2.0),
        **model,
    )
    return Registry(RegistryFile(endpoints=endpoints, models=(spec,)))
