"""Passthrough fallbacks: the other registry models a request goes to when its model fails.

A model's ``fallbacks`` are tried in order, each only after the previous one failed before
its first byte reached the client, in a way another model may fix: it could not be reached
(connect error, timeout), it failed (5xx), it is over its quota or limits (429, the gateway's
own per-minute limits), every deployment's breaker is open, or the request is too long for its
``context_tokens``. Never after a 4xx caused by the request itself (it would fail everywhere)
nor after a 2xx with a garbage body (the model did process the request). Only the models the
current registry defines are tried; a model's fallbacks' own fallbacks are not.
"""

from __future__ import annotations

from router_model.registry import ModelSpec, Registry
from server.upstream.errors import (
    UpstreamConnectionError,
    UpstreamContextTooLongError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

FALLBACK_HEADER = "x-router-fallback"
"""Response header naming the fallback model that answered (absent when the model did)."""

_RECOVERABLE = (
    UpstreamConnectionError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    UpstreamRateLimitedError,
    UpstreamContextTooLongError,
)


def fallback_chain(registry: Registry, model: ModelSpec) -> list[ModelSpec]:
    """``model``, then each of its fallbacks the registry defines, in order."""
    chain = [model]
    for name in model.fallbacks:
        fallback = registry.model(name)
        if fallback is not None and all(fallback.name != m.name for m in chain):
            chain.append(fallback)
    return chain


def falls_back(exc: UpstreamError) -> bool:
    """Whether the next model of the chain is tried after ``exc`` (see the module docstring)."""
    if isinstance(exc, UpstreamHTTPError):
        status = exc.upstream_status_code
        return status == 429 or status >= 500
    return isinstance(exc, _RECOVERABLE)
