"""``GET /v1/models``, ``/health`` and ``/ready``."""

from __future__ import annotations

import openai
import pytest

from tests.server.api.conftest import GatewayFactory


async def test_models_lists_profiles_and_registry_models(gateway: GatewayFactory) -> None:
    async with gateway() as gw:
        page = await gw.client.models.list()
        ids = [model.id async for model in page]
        one = await gw.client.models.retrieve("router-r1")
        with pytest.raises(openai.NotFoundError):
            await gw.client.models.retrieve("nope")
    assert ids[0] == "router-r1"
    assert "Qwen2.5-7B-Instruct" in ids
    assert len(ids) == 7
    assert one.model_extra["router"]["pool"][0] == "Qwen2.5-7B-Instruct"


async def test_ready_when_the_engine_answers(gateway: GatewayFactory) -> None:
    async with gateway() as gw:
        ready = await gw.http.get("/ready")
        health = await gw.http.get("/health")
    assert ready.status_code == 200
    assert ready.json()["policy_engines"] == {"router-r1": True}
    assert health.json() == {"status": "ok"}
