"""build_policy_engine: a profile naming an engine kind this server lacks is explained."""

from __future__ import annotations

import httpx
import pytest

from server.engines.factory import UnsupportedEngine, build_policy_engine
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
