"""The app factory and its lifespan: the gateway's one composition root.

``create_app()`` builds the FastAPI app; its lifespan builds every long-lived object of the
process, in dependency order, into one :class:`~server.state.AppState`, and closes them in
reverse order at shutdown. Nothing is built at import time and nothing is global.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry.sdk.trace import SpanProcessor

from router_model.episode.route import RouteCaller
from router_model.registry import Registry
from router_model.registry.checks import load_servable
from server.api.chat_completions.router import ChatCompletionsFastPath
from server.api.chat_completions.router import router as chat_router
from server.api.health.router import router as health_router
from server.api.metrics.router import router as metrics_router
from server.api.models.router import router as models_router
from server.api.router_ops.router import router as router_ops_router
from server.auth.access import AccessControl
from server.auth.key_watch import KeyFileWatcher
from server.auth.keys import KeyRing
from server.background import BackgroundWork
from server.deps import STATE_KEY
from server.engines.health import EngineHealthPoller
from server.engines.pool import EnginePool
from server.errors import install_error_handlers
from server.lifecycle.recorder import OutcomeExporter, OutcomeRecorder
from server.lifecycle.telemetry import SpanExport
from server.metrics.exposition import worker_exited
from server.metrics.metrics import Metrics
from server.operations.model_limits import ModelRateLimits
from server.operations.traces import TraceArchive
from server.registry_watch import RegistryWatcher
from server.request_id import RequestIdMiddleware
from server.settings import Settings
from server.state import AppState, RegistryHolder, RunnerCache
from server.store.base import SharedStore
from server.store.factory import build_store
from server.telemetry import TelemetryConfig, TraceExporter
from server.telemetry.propagation import (
    TraceContextMiddleware,
    engine_request_hook,
    upstream_trace_headers,
)
from server.ui.router import UI_PATH, mount_trace_viewer
from server.upstream import UpstreamPool, UpstreamSettings, build_aiohttp_transport
from server.upstream.breaker import STATE_VALUES
from server.upstream.cache import CachingRouteCaller
from server.upstream.coalesce import CoalescingRouteCaller
from server.version import gateway_version

logger = logging.getLogger("router_r1")

_DRAIN_TIMEOUT_S = 5.0


def create_app(
    settings: Settings | None = None,
    *,
    registry: Registry | None = None,
    engine_transport: httpx.AsyncBaseTransport | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
    span_processor: SpanProcessor | None = None,
) -> FastAPI:
    """The gateway. ``registry``: use this one (no file, no hot reload). Transports are the
    seams tests use to reach in-process fakes. Tracing is on when the ``OTEL_*`` variables
    ask for it (``server.telemetry.config``), or with ``span_processor`` (tests, benches: spans
    go to it instead of an OTLP exporter)."""
    settings = settings or Settings()
    telemetry = _telemetry_config(settings, span_processor)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            exporter = None
            if telemetry.enabled:
                exporter = TraceExporter(telemetry, processor=span_processor)
                # registered first, so closed last: the requests' spans are all queued by then
                stack.push_async_callback(asyncio.to_thread, exporter.shutdown)
            state = await _build_state(
                stack, settings, registry, engine_transport, upstream_transport, exporter
            )
            setattr(app.state, STATE_KEY, state)
            logger.info("registry %s loaded", state.registry.get().source)
            # What exists now lives as long as the process: keep it out of the collector's
            # full passes (tens of ms each under load, the worst of the p99).
            gc.freeze()
            try:
                yield
            finally:
                gc.unfreeze()

    app = FastAPI(
        title="Router-R1 routing proxy",
        version=gateway_version(),
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        **_without_native_telemetry(),
    )
    install_error_handlers(app)
    app.include_router(chat_router)
    app.include_router(models_router)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(router_ops_router)
    mount_trace_viewer(app)
    app.add_middleware(ChatCompletionsFastPath)
    if telemetry.enabled:  # only then: an untraced gateway runs none of it
        app.add_middleware(TraceContextMiddleware, exporter=lambda: _exporter_of(app))
    app.add_middleware(RequestIdMiddleware)  # added last: outermost, the fast path sees its id
    return app


def _without_native_telemetry() -> dict[str, Any]:
    """FastAPI >= 0.16x instruments every request itself once a global OpenTelemetry provider
    is set (``opentelemetry-instrument``): that would duplicate the gateway's own spans
    (:mod:`server.telemetry`), and even unconfigured it looks the providers up on every
    request (about 2 % of a passthrough request's CPU, bench/bench_proxy.py). Off where it
    exists; older FastAPI has no such parameter."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def _telemetry_config(settings: Settings, processor: SpanProcessor | None) -> TelemetryConfig:
    """What ``OTEL_*`` asks for (a bad value is a startup error, ``TelemetryConfigError``)."""
    content = settings.telemetry.capture_content
    config = TelemetryConfig.from_environ(os.environ, include_content=content)
    if processor is not None and not config.enabled:
        config = TelemetryConfig(enabled=True, include_content=content)
    return config


def _exporter_of(app: FastAPI) -> TraceExporter | None:
    state: AppState | None = getattr(app.state, STATE_KEY, None)
    return None if state is None else state.telemetry


async def _build_state(
    stack: AsyncExitStack,
    settings: Settings,
    registry: Registry | None,
    engine_transport: httpx.AsyncBaseTransport | None,
    upstream_transport: httpx.AsyncBaseTransport | None,
    exporter: TraceExporter | None = None,
) -> AppState:
    """Every long-lived object, each closed by ``stack`` in reverse order of creation."""
    holder = RegistryHolder(registry or load_servable(settings.registry))
    metrics = Metrics(version=gateway_version())
    stack.callback(worker_exited, os.getpid())
    store = build_store(
        settings.redis,
        cache_max_entries=settings.cache.max_entries,
        trace_max_entries=settings.trace.max_entries,
        on_error=lambda operation: metrics.store_errors(operation).inc(),
    )
    stack.push_async_callback(store.aclose)
    await _check_store(store, settings)
    keys = KeyRing.load(settings.api.keys_file, settings.api.keys)
    _log_keys(keys)
    access = AccessControl(keys, store, metrics, fail_open=settings.limits.fail_open)
    traces = TraceArchive(store, settings.trace.ttl_s)
    background = BackgroundWork()
    stack.push_async_callback(background.drain, _DRAIN_TIMEOUT_S)  # before the store closes
    exporters: list[OutcomeExporter] = []
    if exporter is not None:
        exporters.append(SpanExport(exporter, holder.get))
        logger.info(
            "OpenTelemetry tracing on: spans exported over OTLP %s", exporter.config.protocol
        )
    recorder = OutcomeRecorder(
        metrics,
        access,
        traces,
        background,
        access_log=settings.log.access,
        exporters=exporters,
        shield_writes=not store.in_process,
    )
    upstream = await stack.enter_async_context(
        UpstreamPool(
            holder.get,
            settings.upstream,
            transport=upstream_transport,
            # per model, across replicas through the store (one process on the memory store)
            limiter=ModelRateLimits(store, fail_open=settings.limits.fail_open),
            on_breaker_change=lambda model, deployment, state: metrics.breaker_changed(
                model, deployment, STATE_VALUES[state]
            ),
            trace_headers=None if exporter is None else upstream_trace_headers,
        )
    )
    routed: RouteCaller = CoalescingRouteCaller(upstream) if settings.cache.coalesce else upstream
    route_cache = (
        CachingRouteCaller(
            routed,
            store,
            metrics,
            ttl_s=settings.cache.ttl_s,
            max_entry_bytes=settings.cache.max_entry_bytes,
        )
        if settings.cache.enabled
        else None
    )
    engine_client = await stack.enter_async_context(
        _engine_client(settings, engine_transport, traced=exporter is not None)
    )
    engines = EnginePool(engine_client, settings.ready_timeout_s, settings.engine)
    stack.push_async_callback(engines.aclose)
    engine_health = None
    if settings.engine.health_interval_s > 0:
        engine_health = EngineHealthPoller(
            engines, holder.get, metrics, interval_s=settings.engine.health_interval_s
        )
        engine_health.start()
        stack.push_async_callback(engine_health.aclose)
    runners = RunnerCache(engines, routed, route_cache)
    registry_watcher = None
    if registry is None and settings.registry_reload_interval_s > 0:
        registry_watcher = RegistryWatcher(
            settings.registry,
            holder.swap,
            metrics,
            interval_s=settings.registry_reload_interval_s,
        )
        registry_watcher.start()
        stack.push_async_callback(registry_watcher.aclose)
    key_watcher = None
    if settings.api.keys_file is not None and settings.api.keys_reload_interval_s > 0:
        key_watcher = KeyFileWatcher(
            settings.api.keys_file,
            access,
            metrics,
            inline=settings.api.keys,
            interval_s=settings.api.keys_reload_interval_s,
        )
        key_watcher.start()
        stack.push_async_callback(key_watcher.aclose)
    return AppState(
        settings=settings,
        registry=holder,
        metrics=metrics,
        store=store,
        access=access,
        traces=traces,
        background=background,
        recorder=recorder,
        upstream=upstream,
        route_cache=route_cache,
        engines=engines,
        runners=runners,
        registry_watcher=registry_watcher,
        key_watcher=key_watcher,
        engine_health=engine_health,
        telemetry=exporter,
    )


def _engine_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None, *, traced: bool = False
) -> httpx.AsyncClient:
    """``traced``: every engine request carries the request's ``traceparent`` (a hook)."""
    engine = settings.engine
    return httpx.AsyncClient(
        # aiohttp under httpx: a third of httpcore's CPU per engine call, and no anyio
        # checkpoints (each one re-queues the episode behind every ready task under load)
        transport=transport
        if transport is not None
        else build_aiohttp_transport(
            UpstreamSettings(
                max_connections_total=engine.max_connections,
                keepalive_expiry_s=engine.keepalive_expiry_s,
            ),
            precise_errors=True,
        ),
        timeout=httpx.Timeout(engine.read_timeout_s, connect=engine.connect_timeout_s),
        limits=httpx.Limits(
            max_connections=engine.max_connections,
            max_keepalive_connections=engine.max_keepalive_connections,
            keepalive_expiry=engine.keepalive_expiry_s,
        ),
        event_hooks={"request": [engine_request_hook]} if traced else None,
    )


async def _check_store(store: SharedStore, settings: Settings) -> None:
    if store.backend == "redis" and not await store.ping():
        logger.warning(
            "redis at ROUTER_R1_REDIS_URL does not answer; serving anyway (cache bypassed, "
            "limits %s) until it does",
            "not enforced" if settings.limits.fail_open else "refusing requests",
        )


def _log_keys(keys: KeyRing) -> None:
    if keys.open_mode:
        logger.warning(
            "no API keys configured (ROUTER_R1_API_KEYS_FILE / ROUTER_R1_API_KEYS): open mode, "
            "anyone who can reach this gateway may use it and read every request's trace "
            "(GET /v1/router/traces, the trace viewer at %s/)",
            UI_PATH,
        )
    else:
        logger.info("%d API keys configured", len(keys))
