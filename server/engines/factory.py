"""Building the policy engine a router profile names."""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from router_model.episode.engine import PolicyEngine
from router_model.registry import Registry, RouterProfile
from server.engines.llamacpp import LlamaCppEngine
from server.engines.vllm import VLLMEngine

_ENGINE_CLASSES: dict[str, type[VLLMEngine]] = {"vllm": VLLMEngine, "llamacpp": LlamaCppEngine}


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
) -> PolicyEngine:
    """The engine serving ``profile.policy``, speaking through the shared ``client``.

    The API key is read from the endpoint's ``api_key_env`` variable (absent → none);
    the endpoint's connect/read timeouts bound every engine request.
    """
    env = os.environ if environ is None else environ
    policy = profile.policy
    try:
        endpoint = registry.endpoint(policy.endpoint)
    except KeyError:
        raise EngineConfigError(
            f"profile {profile.name!r}: policy endpoint {policy.endpoint!r} is not defined"
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
