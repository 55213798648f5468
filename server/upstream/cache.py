"""The sub-query cache: a :class:`RouteCaller` wrapper that answers repeated deterministic
Router-R1 sub-queries from the shared store.

Only deterministic calls are cached: the model's registry defaults have temperature 0 and a
seed (as the paper's upstream calls do). The key is a hash of the model (name, and the endpoint
and upstream id of each deployment), the exact rendered prompt and every sampling parameter
sent (identical calls in flight at once share one call: :mod:`.coalesce`). A hit is returned with
status ``"cached"``, cost $0 and its original token counts (the trace marks the step
``cached``). Only successful replies are stored, up to ``max_entry_bytes``, for ``ttl_s``.
When the store is unavailable the cache is bypassed: the call goes to the upstream.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from typing import Any

import orjson

from router_model.episode.route import RouteCaller, UpstreamReply
from router_model.registry import ModelSpec
from server.metrics.metrics import Metrics
from server.store.base import SharedStore, StoreUnavailable

_KEY_VERSION = 2  # 2: the model's deployments (endpoint, upstream id) instead of one

CACHE_HEADER = "x-router-cache"
"""Per-request opt-out: ``x-router-cache: off`` (or body ``{"router": {"cache": false}}``)."""


def is_deterministic(model: ModelSpec) -> bool:
    return model.defaults.temperature == 0 and model.defaults.seed is not None


def cache_key(model: ModelSpec, prompt: str, max_tokens: int) -> str:
    defaults = model.defaults
    material = orjson.dumps(
        [
            _KEY_VERSION,
            model.name,
            [(d.endpoint, d.upstream_model) for d in model.deployments],
            prompt,
            defaults.temperature,
            defaults.top_p,
            defaults.seed,
            max_tokens,
        ]
    )
    return "route:" + hashlib.sha256(material).hexdigest()


def cache_wanted(header: str | None, body: dict[str, Any]) -> bool:
    """False when the request opted out of the cache (header or body)."""
    if header is not None and header.strip().lower() in ("off", "no", "false", "0", "bypass"):
        return False
    router = body.get("router")
    return not (isinstance(router, dict) and router.get("cache") is False)


def _encode(reply: UpstreamReply) -> bytes:
    return orjson.dumps(
        {
            "text": reply.text,
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "finish_reason": reply.finish_reason,
            "usage_missing": reply.usage_missing,
        }
    )


def _decode(model: ModelSpec, raw: bytes, latency_s: float) -> UpstreamReply | None:
    try:
        data = orjson.loads(raw)
        return UpstreamReply(
            model=model.name,
            status="cached",
            text=str(data["text"]),
            prompt_tokens=int(data["prompt_tokens"]),
            completion_tokens=int(data["completion_tokens"]),
            cost_usd=0.0,
            latency_s=latency_s,
            attempts=0,
            finish_reason=data.get("finish_reason"),
            usage_missing=bool(data.get("usage_missing", False)),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None  # an entry of another version: a miss


class CachingRouteCaller:
    """Wraps ``inner`` (the upstream pool) with the shared sub-query cache."""

    def __init__(
        self,
        inner: RouteCaller,
        store: SharedStore,
        metrics: Metrics,
        *,
        ttl_s: float = 3600.0,
        max_entry_bytes: int = 64 * 1024,
    ) -> None:
        self.inner = inner
        self._store = store
        self._metrics = metrics
        self._ttl_s = ttl_s
        self._max_entry_bytes = max_entry_bytes

    async def route_call(self, model: ModelSpec, prompt: str, *, max_tokens: int) -> UpstreamReply:
        if not is_deterministic(model):
            self._metrics.cache_lookups(model.name, "bypass").inc()
            return await self.inner.route_call(model, prompt, max_tokens=max_tokens)
        key = cache_key(model, prompt, max_tokens)
        started = time.perf_counter()
        try:
            raw = await self._store.cache_get(key)
        except StoreUnavailable:
            self._metrics.cache_lookups(model.name, "error").inc()
            return await self.inner.route_call(model, prompt, max_tokens=max_tokens)
        if raw is not None:
            hit = _decode(model, raw, time.perf_counter() - started)
            if hit is not None:
                self._metrics.cache_lookups(model.name, "hit").inc()
                return hit
        self._metrics.cache_lookups(model.name, "miss").inc()
        reply = await self.inner.route_call(model, prompt, max_tokens=max_tokens)
        if reply.status == "ok" and reply.text is not None and not reply.shared:
            value = _encode(reply)
            if len(value) <= self._max_entry_bytes:
                with contextlib.suppress(StoreUnavailable):  # not cached: that is all
                    await self._store.cache_put(key, value, self._ttl_s)
        return reply
