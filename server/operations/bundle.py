"""Everything operational one gateway process holds, built and closed by the app's lifespan:
metrics, the shared store, API keys and limits, the sub-query cache, traces, registry and key
file reload."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request

from router_model.registry import Registry
from server.auth.access import AccessControl
from server.auth.key_watch import KeyFileWatcher
from server.auth.keys import KeyRing
from server.metrics.exposition import worker_exited
from server.metrics.metrics import Metrics
from server.operations.accounting import RequestAccount
from server.operations.settings import OperationsSettings
from server.operations.traces import TraceArchive
from server.registry_watch import RegistryWatcher
from server.request_id import request_id_of
from server.store.base import SharedStore
from server.store.factory import build_store
from server.upstream.cache import CachingRouteCaller
from server.upstream.reply import RouteCaller

logger = logging.getLogger("router_r1.operations")

_DRAIN_TIMEOUT_S = 5.0


@dataclass
class Operations:
    """Reached by request handlers as ``ServingState.ops``."""

    settings: OperationsSettings
    metrics: Metrics
    store: SharedStore
    access: AccessControl
    traces: TraceArchive
    route_cache: CachingRouteCaller | None = None
    watcher: RegistryWatcher | None = None
    key_watcher: KeyFileWatcher | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    async def open_account(self, request: Request) -> RequestAccount:
        """Authenticate and admit the request's caller (401/429/402 raise, and are counted)."""
        account = RequestAccount(self, request_id_of(request.scope))
        try:
            account.caller = self.access.authenticate(request.headers.get("authorization"))
            await self.access.admit(account.caller)
        except BaseException as exc:
            await account.close(exc)
            raise
        return account

    def route_caller(self, pool: RouteCaller, *, cache: bool) -> RouteCaller:
        """What episodes call upstreams through: the cache wrapper unless opted out."""
        return self.route_cache if cache and self.route_cache is not None else pool

    async def run_shielded(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` to its end even if the caller is cancelled (a client disconnect must
        not lose a request's spend); the caller waits for it unless cancelled."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        await asyncio.shield(task)

    async def aclose(self) -> None:
        for watcher in (self.watcher, self.key_watcher):
            if watcher is not None:
                await watcher.aclose()
        pending = list(self._background)
        if pending:
            await asyncio.wait(pending, timeout=_DRAIN_TIMEOUT_S)
        await self.store.aclose()
        worker_exited(os.getpid())


@asynccontextmanager
async def running_operations(
    settings: OperationsSettings,
    upstream: RouteCaller,
    *,
    registry_file: Path | None,
    apply_registry: Callable[[Registry], None],
) -> AsyncIterator[Operations]:
    """Build the operations layer; ``registry_file`` is watched for edits when given."""
    metrics = Metrics()
    keys = KeyRing.load(settings.api_keys_file, settings.api_keys)
    store = build_store(settings, on_error=lambda operation: metrics.store_errors(operation).inc())
    access = AccessControl(keys, store, metrics, fail_open=settings.limits_fail_open)
    cache = (
        CachingRouteCaller(
            upstream,
            store,
            metrics,
            ttl_s=settings.cache_ttl_s,
            max_entry_bytes=settings.cache_max_entry_bytes,
        )
        if settings.cache_enabled
        else None
    )
    ops = Operations(settings, metrics, store, access, TraceArchive(store, settings.trace_ttl_s))
    ops.route_cache = cache
    if keys.open_mode:
        logger.warning(
            "no API keys configured (ROUTER_R1_API_KEYS_FILE / ROUTER_R1_API_KEYS): open mode, "
            "anyone who can reach this gateway may use it"
        )
    else:
        logger.info("%d API keys configured", len(keys))
    if store.backend == "redis" and not await store.ping():
        logger.warning(
            "redis at ROUTER_R1_REDIS_URL does not answer; serving anyway (cache bypassed, "
            "limits %s) until it does",
            "not enforced" if settings.limits_fail_open else "refusing requests",
        )
    if registry_file is not None and settings.registry_reload_interval_s > 0:
        ops.watcher = RegistryWatcher(
            registry_file, apply_registry, metrics, interval_s=settings.registry_reload_interval_s
        )
        ops.watcher.start()
    if settings.api_keys_file is not None and settings.api_keys_reload_interval_s > 0:
        ops.key_watcher = KeyFileWatcher(
            settings.api_keys_file,
            access,
            metrics,
            inline=settings.api_keys,
            interval_s=settings.api_keys_reload_interval_s,
        )
        ops.key_watcher.start()
    try:
        yield ops
    finally:
        try:
            await ops.aclose()
        except Exception:  # shutting down: report, never mask the lifespan's own error
            logger.exception("closing the operations layer failed")
