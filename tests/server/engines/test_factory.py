"""build_policy_engine: a profile naming an engine kind this server lacks is explained."""

from __future__ import annotations

import httpx
import pytest

from server.engines.factory import UnsupportedEngine, build_policy_engine
from server.engines.llama_server import LlamaServerEngine
from tests.fakes.registry import default_registry, router_profile


async def test_an_engine_kind_without_a_client_is_refused_by_name() -> None:
    registry = default_registry()
    profile = router_profile(registry)
    sglang = profile.model_copy(  # past the schema, which only admits the implemented kinds
        update={"policy": profile.policy.model_copy(update={"engine": "sglang"})}
    )
    async with httpx.AsyncClient() as client:
        with pytest.raises(UnsupportedEngine) as info:
            build_policy_engine(registry, sglang, client, environ={})
    assert str(info.value) == (
        f"profile {profile.name!r}: policy engine 'sglang' is not implemented "
        "(supported: 'vllm', 'llamacpp')"
    )


async def test_llamacpp_means_llama_server() -> None:
    registry = default_registry()
    profile = router_profile(registry)
    llama = profile.model_copy(
        update={"policy": profile.policy.model_copy(update={"engine": "llamacpp"})}
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"tokens": [9]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        engine = build_policy_engine(registry, llama, client, environ={})
        assert isinstance(engine, LlamaServerEngine)
        assert await engine.tokenize("x") == [9]
    assert seen[0].url.path == "/tokenize"  # the native endpoint, at the server root
