"""Real llama.cpp servers for the integration tests, started once per test session.

Three servers on free loopback ports (the local stack's): the SmolLM2-135M-Instruct policy,
and SmolLM2-135M-Instruct and Gemma-3-270M as the upstream pool; the packaged local
registry (``grammar: true``) points at them. The gateway runs in-process per test, with
recording transports, driven by the ``openai`` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from local_stack.processes import LlamaServerSpec, llama_server
from local_stack.stack import LOCAL_PROFILE, PORT_ENV, local_registry_path, local_server_specs
from router_model.registry import Registry, RouterProfile
from server.app import create_app
from server.engines import LlamaCppEngine
from server.settings import Settings
from tests.integration.recording import RecordingTransport
from tests.servers.in_process import sdk_client

READY_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class LlamaStack:
    specs: dict[str, LlamaServerSpec]
    registry: Registry

    @property
    def profile(self) -> RouterProfile:
        profile = self.registry.profile(LOCAL_PROFILE)
        assert profile is not None
        return profile

    def port(self, name: str) -> int:
        return self.specs[name].port


@pytest.fixture(scope="session")
def llama_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaStack]:
    specs = local_server_specs(n_threads=2)
    log_dir = tmp_path_factory.mktemp("llama-logs")
    servers = [llama_server(spec, log_dir) for spec in specs]
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


def with_limits(stack: LlamaStack, **limits: Any) -> Registry:
    """The stack's registry with the local profile's limits changed (shorter test episodes)."""
    registry = stack.registry
    profiles = tuple(
        p.model_copy(update={"limits": p.limits.model_copy(update=limits)})
        if p.name == LOCAL_PROFILE
        else p
        for p in registry.spec.profiles
    )
    return Registry(registry.spec.model_copy(update={"profiles": profiles}), registry.source)


@asynccontextmanager
async def policy_engine(stack: LlamaStack) -> AsyncIterator[LlamaCppEngine]:
    """An engine of its own on the policy server (independent of any gateway)."""
    async with httpx.AsyncClient(timeout=300) as client:
        yield LlamaCppEngine(
            client, base_url=stack.specs["policy"].base_url, model=stack.profile.policy.model
        )
