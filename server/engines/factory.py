"""Building the policy engine a router profile names: one client per endpoint, and the replica
set of the profile's endpoints."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

import httpx

from router_model.registry import Registry, RouterProfile
from server.engines.breaker import CircuitBreaker
from server.engines.llama_server import LlamaServerEngine
from server.engines.replicas import Replica, ReplicaSet
from server.engines.settings import EngineSettings
from server.engines.vllm import VLLMEngine

# ``llamacpp`` is llama.cpp's own ``llama-server`` (its native API: token-id prompts,
# /tokenize, /apply-template, grammar, slots).
_ENGINE_CLASSES: dict[str, type[VLLMEngine]] = {
    "vllm": VLLMEngine,
    "llamacpp": LlamaServerEngine,
}


class EngineConfigError(Exception):
    """A profile's policy engine cannot be built from the registry as configured."""


class UnsupportedEngine(EngineConfigError, NotImplementedError):
    """The profile names an engine kind this server does not implement yet."""


def build_policy_engine(
    registry: Registry,
    profile: RouterProfile,
    client: httpx.AsyncClient,
    *,
    environ: Mapping[str, str] | None = None,
    endpoint_name: str | None = None,
) -> VLLMEngine:
    """The engine serving ``profile.policy`` at ``endpoint_name`` (default: its first
    endpoint), speaking through the shared ``client``.

    The API key is read from the endpoint's ``api_key_env`` variable (absent → none);
    the endpoint's connect/read timeouts bound every engine request.
    """
    env = os.environ if environ is None else environ
    policy = profile.policy
    name = endpoint_name or policy.replica_endpoints[0]
    try:
        endpoint = registry.endpoint(name)
    except KeyError:
        raise EngineConfigError(
            f"profile {profile.name!r}: policy endpoint {name!r} is not defined"
        ) from None
    api_key = env.get(endpoint.api_key_env) if endpoint.api_key_env else None
    timeout = httpx.Timeout(endpoint.read_timeout_s, connect=endpoint.connect_timeout_s)
    engine_class = _ENGINE_CLASSES.get(policy.engine)
    if engine_class is None:
        supported = ", ".join(repr(name) for name in _ENGINE_CLASSES)
        raise UnsupportedEngine(
            f"profile {profile.name!r}: policy engine {policy.engine!r} is not implemented "
            f"(supported: {supported})"
        )
    return engine_class(
        client,
        base_url=endpoint.base_url,
        model=policy.model,
        api_key=api_key or None,
        timeout=timeout,
    )


def build_replica_set(
    registry: Registry,
    profile: RouterProfile,
    client: httpx.AsyncClient,
    settings: EngineSettings,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ReplicaSet:
    """The replicas of ``profile.policy`` (one per endpoint), each with its own breaker."""
    replicas = [
        Replica(
            name,
            build_policy_engine(registry, profile, client, environ=environ, endpoint_name=name),
            CircuitBreaker(
                failure_threshold=settings.breaker_failure_threshold,
                cooldown_s=settings.breaker_cooldown_s,
                clock=clock,
            ),
        )
        for name in profile.policy.replica_endpoints
    ]
    return ReplicaSet(
        replicas,
        session_header=profile.policy.session_header or settings.session_header or None,
        selection=settings.replica_selection,
    )
