"""Registry hot reload: valid edits swap in between requests, invalid ones are reported and
the last good registry keeps serving; a model added to the pool is routable at once."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import yaml

from router_model.registry import Registry
from server.app import create_app
from server.metrics import Metrics
from server.registry_watch import RegistryWatcher
from server.settings import Settings
from tests.fakes.registry import REGISTRY_FILE
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM, ScriptedTurn
from tests.server.file_edits import settled

QUESTION = [{"role": "user", "content": "Who wrote the novel War and Peace?"}]
ANSWER = "<think>Done.</think>\n<answer> Leo Tolstoy </answer>"
PHI: dict[str, Any] = {
    "name": "Phi-3-Mini-Instruct",
    "description": "Phi-3-Mini-Instruct is a small model added while the gateway was running.",
    "endpoint": "nim",
    "upstream_model": "microsoft/phi-3-mini-4k-instruct",
    "pricing": {"input_per_1m": 0.1, "output_per_1m": 0.1},
}


def registry_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(REGISTRY_FILE.read_text())
    return data


def write(path: Path, data: dict[str, Any] | str) -> None:
    """Write the file and move its mtime on, so an edit is seen whatever the clock resolution."""
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    later = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(later, later))


def metric(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


# ---------------------------------------------------------------------------- the watcher


async def test_valid_invalid_and_fixed_edits(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    data = registry_data()
    write(path, data)
    applied: list[Registry] = []
    metrics = Metrics()
    watcher = RegistryWatcher(path, applied.append, metrics, interval_s=60)
    assert await settled(watcher) is False  # nothing changed

    data["models"][0]["pricing"]["output_per_1m"] = 9.0
    write(path, data)
    assert await settled(watcher) is True
    assert applied[-1].models[0].pricing.output_per_1m == 9.0
    assert metric(metrics, "router_r1_registry_reloads_total", result="ok") == 1

    write(path, "models: [unclosed\n")
    assert await settled(watcher) is False
    assert watcher.last_error is not None
    assert str(path) in watcher.last_error
    assert "invalid YAML" in watcher.last_error
    assert metric(metrics, "router_r1_registry_reloads_total", result="failed") == 1
    assert metric(metrics, "router_r1_registry_reload_failing") == 1
    assert len(applied) == 1

    broken = registry_data()
    broken["profiles"][0]["pool"].append("No-Such-Model")
    write(path, broken)
    assert await settled(watcher) is False
    assert "No-Such-Model" in (watcher.last_error or "")

    write(path, data)  # back to the file in service: nothing to reload, nothing failing
    assert await settled(watcher) is False
    assert watcher.last_error is None
    assert metric(metrics, "router_r1_registry_reload_failing") == 0

    data["models"][0]["pricing"]["output_per_1m"] = 8.0  # a valid edit again
    write(path, data)
    assert await settled(watcher) is True
    assert applied[-1].models[0].pricing.output_per_1m == 8.0
    assert watcher.reloads == 2


async def test_touching_without_changing_content_does_not_reload(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    write(path, registry_data())
    applied: list[Registry] = []
    watcher = RegistryWatcher(path, applied.append, Metrics(), interval_s=60)
    write(path, path.read_text())
    assert await settled(watcher) is False
    assert applied == []


# ---------------------------------------------------------------------------- the gateway


@asynccontextmanager
async def file_gateway(
    path: Path, engine: FakeVLLM, upstream: FakeUpstream
) -> AsyncIterator[tuple[openai.AsyncOpenAI, httpx2.AsyncClient]]:
    settings = Settings.from_flat(
        dict(
            registry=path,
            registry_reload_interval_s=0.05,
            upstream_backoff_base_s=0.001,
            upstream_total_timeout_s=2.0,
        )
    )
    app = create_app(
        settings,
        engine_transport=httpx.ASGITransport(app=engine.app),
        upstream_transport=httpx.ASGITransport(app=upstream.app),
    )
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            client = openai.AsyncOpenAI(
                base_url="http://gateway.test/v1", api_key="k", http_client=http, max_retries=0
            )
            yield client, http


async def wait_for(condition: Any, what: str, timeout_s: float = 5.0) -> None:
    """Poll ``condition`` (the watcher runs on its own schedule: nothing to wait on)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def phi_policy(prompt: str) -> str:
    """Route to Phi-3 once the prompt lists it, then answer."""
    if prompt.rstrip().endswith("</information>"):
        return ANSWER
    if PHI["description"] in prompt:
        return "<think>Phi.</think>\n<search> Phi-3-Mini-Instruct:who wrote war and peace </search>"
    return ANSWER


async def test_a_model_added_to_the_file_is_routed_to(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    data = registry_data()
    write(path, data)
    upstream = FakeUpstream({PHI["upstream_model"]: UpstreamScript(reply="Tolstoy.")})
    engine = FakeVLLM(phi_policy)
    async with file_gateway(path, engine, upstream) as (client, http):
        before = await client.chat.completions.create(model="router-r1", messages=QUESTION)
        assert before.model_extra["router"]["totals"]["routes"] == 0

        data["models"].append(PHI)
        data["profiles"][0]["pool"].append(PHI["name"])
        write(path, data)

        async def listed() -> bool:
            models = await client.models.list()
            return any(m.id == PHI["name"] for m in models.data)

        await wait_for(listed, "the new model in /v1/models")
        after = await client.chat.completions.create(model="router-r1", messages=QUESTION)
        step = after.model_extra["router"]["steps"][0]
        assert step["model"] == PHI["name"]
        assert step["upstream_status"] == "ok"
        assert len(upstream.calls_to(str(PHI["upstream_model"]))) == 1
        assert PHI["description"] in engine.completions[-2].prompt_text
        ready = (await http.get("/ready")).json()
        assert ready["registry_reload"]["reloads"] == 1


async def test_an_invalid_edit_keeps_serving_and_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    write(path, registry_data())
    async with file_gateway(path, FakeVLLM(lambda _: ANSWER), FakeUpstream()) as (client, http):
        write(path, "version: 1\nmodels: []\nprofiles: oops\n")

        async def reported() -> bool:
            response = await http.get("/ready")
            return bool(response.json()["registry_reload"]["last_error"])

        await wait_for(reported, "the reload error in /ready")
        completion = await client.chat.completions.create(model="router-r1", messages=QUESTION)
        assert completion.choices[0].message.content == "Leo Tolstoy"
        metrics = (await http.get("/metrics")).text
        assert 'router_r1_registry_reloads_total{result="failed"} 1.0' in metrics
        assert "router_r1_registry_reload_failing 1.0" in metrics


async def test_in_flight_episodes_finish_on_the_old_registry(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    data = registry_data()
    write(path, data)
    route = "<think>Ask.</think>\n<search> Qwen2.5-7B-Instruct:who wrote war and peace </search>"
    upstream = FakeUpstream({"qwen/qwen2.5-7b-instruct": UpstreamScript(reply="Tolstoy.")})
    engine = FakeVLLM([ScriptedTurn(route, delay_s=0.5), ANSWER, route, ANSWER])
    async with file_gateway(path, engine, upstream) as (client, _):
        in_flight = asyncio.create_task(
            client.chat.completions.create(model="router-r1", messages=QUESTION)
        )
        await asyncio.sleep(0.1)  # the episode has started on the registry with Qwen
        data["models"] = [m for m in data["models"] if m["name"] != "Qwen2.5-7B-Instruct"]
        data["profiles"][0]["pool"].remove("Qwen2.5-7B-Instruct")
        write(path, data)
        old = await in_flight
        new = await client.chat.completions.create(model="router-r1", messages=QUESTION)
    assert old.model_extra["router"]["steps"][0]["model"] == "Qwen2.5-7B-Instruct"
    assert old.model_extra["router"]["steps"][0]["upstream_status"] == "ok"
    assert new.model_extra["router"]["steps"][0]["upstream_status"] == "unknown_model"
