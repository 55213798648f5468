"""The app factory: ``create_app()`` builds the FastAPI gateway; its lifespan owns the clients."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI

from router_model.registry import Registry
from server.api.auth import require_api_key
from server.api.chat_completions.router import ChatCompletionsFastPath
from server.api.chat_completions.router import router as chat_router
from server.api.health.router import router as health_router
from server.api.metrics.router import router as metrics_router
from server.api.models.router import router as models_router
from server.api.router_ops.router import router as router_ops_router
from server.errors import install_error_handlers
from server.operations.bundle import running_operations
from server.request_id import RequestIdMiddleware
from server.settings import Settings
from server.state import EnginePool, RegistryHolder, ServingState
from server.upstream import UpstreamPool, UpstreamSettings, build_aiohttp_transport

logger = logging.getLogger("router_r1")


def create_app(
    settings: Settings | None = None,
    *,
    registry: Registry | None = None,
    engine_transport: httpx.AsyncBaseTransport | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The gateway. Transports are the seams tests use to reach in-process fakes."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder = RegistryHolder(registry or Registry.from_file(settings.registry))
        upstream_settings = UpstreamSettings(
            total_timeout_s=settings.upstream_total_timeout_s,
            passthrough_timeout_s=settings.upstream_passthrough_timeout_s,
            max_retries=settings.upstream_max_retries,
            backoff_base_s=settings.upstream_backoff_s,
        )
        engine_client = httpx.AsyncClient(
            # aiohttp under httpx: a third of httpcore's CPU per engine call, and no anyio
            # checkpoints (each one re-queues the episode behind every ready task under load)
            transport=engine_transport
            if engine_transport is not None
            else build_aiohttp_transport(
                UpstreamSettings(max_connections_total=256), precise_errors=True
            ),
            timeout=httpx.Timeout(
                settings.engine_read_timeout_s, connect=settings.engine_connect_timeout_s
            ),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )
        async with (
            UpstreamPool(holder.get, upstream_settings, transport=upstream_transport) as pool,
            running_operations(
                settings,
                pool,
                registry_file=None if registry is not None else settings.registry,
                apply_registry=holder.swap,
            ) as ops,
        ):
            engines = EnginePool(engine_client, settings.ready_timeout_s)
            app.state.serving = ServingState(settings, holder, pool, engines, ops)
            logger.info("registry %s loaded", holder.get().source)
            # What exists now lives as long as the process: keep it out of the collector's
            # full passes (tens of ms each under load, the worst of the p99).
            gc.freeze()
            try:
                yield
            finally:
                gc.unfreeze()
                await engines.aclose()
                await engine_client.aclose()

    app = FastAPI(
        title="Router-R1 routing proxy",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    install_error_handlers(app)
    app.include_router(chat_router)
    app.include_router(models_router, dependencies=[Depends(require_api_key)])
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(router_ops_router)
    app.add_middleware(ChatCompletionsFastPath)
    app.add_middleware(RequestIdMiddleware)  # added last: outermost, the fast path sees its id
    return app
