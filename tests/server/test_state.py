"""EnginePool: one engine per policy endpoint configuration, rebuilt when a reload changes it."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from router_model.registry import Registry
from server.engines.pool import EnginePool
from tests.fakes.registry import REGISTRY_FILE, default_registry, router_profile


def _with_policy_read_timeout(tmp_path: Path, seconds: float) -> Registry:
    data = yaml.safe_load(REGISTRY_FILE.read_text())
    profile = router_profile(default_registry())
    data["endpoints"][profile.policy.endpoint]["read_timeout_s"] = seconds
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return Registry.from_file(path, environ={})


async def test_an_engine_is_shared_until_its_endpoint_changes(tmp_path: Path) -> None:
    async with httpx.AsyncClient() as client:
        pool = EnginePool(client, ready_timeout_s=1.0)
        first, same = default_registry(), default_registry()
        engine = pool.for_profile(first, router_profile(first))
        assert pool.for_profile(same, router_profile(same)) is engine  # equal config, reloaded
        slower = _with_policy_read_timeout(tmp_path, 999.0)
        assert pool.for_profile(slower, router_profile(slower)) is not engine
