"""Where a training run's upstream calls go: a factory the entry point names by import path.

The trainers depend only on the core's :class:`~router_model.episode.route.RouteCaller` port.
The real upstream clients belong to the gateway; the ``router-r1 train`` entry point names the
factory that builds them (``router_r1.upstreams:registry_upstreams``) and the training process
imports it by that name at run time. A name rather than an object, because veRL builds the
agent loop from a config file in its own worker processes, and TRL runs in its own venv.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from router_model.episode.route import RouteCaller
from router_model.registry import Registry

UpstreamFactory = Callable[[Registry, float], AbstractAsyncContextManager[RouteCaller]]
"""``factory(registry, total_timeout_s)``: an async context manager holding a RouteCaller."""


def resolve_upstreams(path: str) -> UpstreamFactory:
    """The factory named ``module:attribute`` (ValueError when it cannot be imported)."""
    if ":" not in path:
        raise ValueError(f"upstream factory {path!r}: expected 'module:attribute'")
    try:
        factory = pkgutil.resolve_name(path)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"upstream factory {path!r} cannot be imported: {exc}") from exc
    if not callable(factory):
        raise ValueError(f"upstream factory {path!r} is not callable")
    resolved: UpstreamFactory = factory
    return resolved
