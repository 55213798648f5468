"""Real llama.cpp servers for the integration tests, started once per test session.

The local stack's two ``llama-server`` processes on free loopback ports (four slots each):
Qwen2.5-Coder-1.5B-Instruct (the default profile's policy and the pool's strong model) and
SmolLM2-135M-Instruct (the pool's cheap model and the fast plumbing profile's policy); the
packaged local registry (``grammar: true``) points at them. The gateway runs in-process per
test, with recording transports, driven by the ``openai`` SDK. Most tests play the SmolLM2
plumbing profile (fast); a few play the Qwen profile for the production token layout."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from local_stack.llama_server_process import LlamaServerOptions, managed_llama_server
from local_stack.stack import PLUMBING_PROFILE, PORT_ENV, local_registry_path, local_server_specs
from router_model.registry import Registry, RouterProfile
from server.app import create_app
from server.engines import LlamaServerEngine
from server.settings import Settings
from tests.integration.recording import RecordingTransport
from tests.servers.in_process import sdk_client

READY_TIMEOUT_S = 180.0
GENERATE_PATH = "/completion"  # llama-server's native generation endpoint (the engine's)
QWEN, SMOLLM2 = "Qwen2.5-Coder-1.5B-Instruct", "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class LlamaStack:
    specs: dict[str, LlamaServerOptions]
    registry: Registry

    def profile(self, name: str = PLUMBING_PROFILE) -> RouterProfile:
        profile = self.registry.profile(name)
        assert profile is not None
        return profile

    def port(self, name: str) -> int:
        return self.specs[name].port

    def policy_url(self, profile: str = PLUMBING_PROFILE) -> str:
        endpoint = self.profile(profile).policy.endpoint
        assert endpoint is not None
        return self.registry.endpoint(endpoint).base_url


@pytest.fixture(scope="session")
def llama_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaStack]:
    specs = local_server_specs(n_threads=2)
    log_dir = tmp_path_factory.mktemp("llama-logs")
    servers = [managed_llama_server(spec, log_dir) for spec in specs]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready(READY_TIMEOUT_S)
        environ = {PORT_ENV[spec.name]: str(spec.port) for spec in specs}
        registry = Registry.from_file(local_registry_path(), environ=environ)
        yield LlamaStack({spec.name: spec for spec in specs}, registry)
    finally:
        for server in servers:
            server.stop()


@dataclass
class LiveGateway:
    app: FastAPI
    client: openai.AsyncOpenAI
    engine_calls: RecordingTransport
    upstream_calls: RecordingTransport


@asynccontextmanager
async def live_gateway(registry: Registry, **settings: Any) -> AsyncIterator[LiveGateway]:
    engine_calls, upstream_calls = RecordingTransport(), RecordingTransport()
    defaults: dict[str, Any] = {
        "upstream_total_timeout_s": 300.0,
        "engine_read_timeout_s": 300.0,
        "cache_enabled": False,  # every route reaches its upstream
        "upstream_keepalive_expiry_s": 4.0,  # under llama-server's 5 s idle timeout
        "registry_reload_interval_s": 0,
    }
    app = create_app(
        Settings.from_flat({**defaults, **settings}),
        registry=registry,
        engine_transport=engine_calls,
        upstream_transport=upstream_calls,
    )
    async with sdk_client(app, request_timeout_s=600) as (client, _):
        yield LiveGateway(app, client, engine_calls, upstream_calls)


def with_limits(stack: LlamaStack, profile: str = PLUMBING_PROFILE, **limits: Any) -> Registry:
    """The stack's registry with one profile's limits changed (shorter test episodes)."""
    registry = stack.registry
    profiles = tuple(
        p.model_copy(update={"limits": p.limits.model_copy(update=limits)})
        if p.name == profile
        else p
        for p in registry.spec.profiles
    )
    return Registry(registry.spec.model_copy(update={"profiles": profiles}), registry.source)


@asynccontextmanager
async def policy_engine(
    stack: LlamaStack, profile: str = PLUMBING_PROFILE
) -> AsyncIterator[LlamaServerEngine]:
    """An engine of its own on a profile's policy server (independent of any gateway)."""
    async with httpx.AsyncClient(timeout=300) as client:
        yield LlamaServerEngine(
            client, base_url=stack.policy_url(profile), model=stack.profile(profile).policy.model
        )
