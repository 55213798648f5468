"""The gateway in-process (see tests/server/api/conftest.py), with keys and a real Redis."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from router_model.episode import PolicyOverrides, resolve_settings
from server.auth import hash_key
from server.lifecycle.budget import episode_worst_case_usd
from tests.fakes.registry import PROFILE, default_registry
from tests.server.api.conftest import GatewayFactory, running_gateway
from tests.servers.fixtures import redis_server

__all__ = ["gateway", "redis_server"]

KEY_A = "rr1-key-of-team-a"
KEY_B = "rr1-key-of-team-b"
ADMIN_KEY = "rr1-admin-key"
QUESTION = [{"role": "user", "content": "Who wrote the novel War and Peace?"}]
QWEN = "qwen/qwen2.5-7b-instruct"
ROUTE_QWEN = (
    "<think>I should ask.</think>\n<search> Qwen2.5-7B-Instruct:who wrote war and peace </search>"
)
ANSWER = "<think>Now I know.</think>\n<answer> Leo Tolstoy </answer>"


def key_entry(key_id: str, key: str, **limits: Any) -> dict[str, Any]:
    return {"id": key_id, "sha256": hash_key(key), **limits}


def keys_json(*entries: dict[str, Any]) -> str:
    return orjson.dumps(list(entries)).decode()


@pytest.fixture
def gateway() -> GatewayFactory:
    return running_gateway


async def spend_of(gw: Any, key: str) -> float:
    """The key's spend this budget period, from ``GET /v1/router/usage``."""
    response = await gw.http.get("/v1/router/usage", headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    spend: float = response.json()["budget"]["spend_usd"]
    return spend


def one_request_budget(messages: list[dict[str, str]] = QUESTION) -> float:
    """A budget that covers exactly one ``router-r1`` request's worst case (what admission
    reserves): the first request is admitted, and once it has spent anything the next one
    cannot be covered."""
    registry = default_registry()
    profile = registry.profile(PROFILE)
    assert profile is not None
    settings = resolve_settings(profile, PolicyOverrides())
    worst = episode_worst_case_usd(registry, profile, settings, {"messages": messages})
    return worst * (1 + 1e-9)
