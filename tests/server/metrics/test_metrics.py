"""``GET /metrics`` after real traffic: the series a dashboard needs, with bounded labels."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router_model.registry import Registry
from server.auth import hash_key
from server.version import gateway_version
from tests.fakes.registry import default_registry
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM
from tests.server.api.conftest import running_gateway
from tests.servers.ports import free_port, port_open, wait_until

QWEN = "qwen/qwen2.5-7b-instruct"
QUESTION = [{"role": "user", "content": "Who wrote the novel War and Peace? secret-prompt-text"}]
ROUTE = "<think>Ask.</think>\n<search> Qwen2.5-7B-Instruct:who wrote war and peace </search>"
INVALID = "<think>Hmm.</think> no action at all"
ANSWER = "<think>Done.</think>\n<answer> Leo Tolstoy </answer>"
KEY = "rr1-metrics-test-key"
KEYS = f'[{{"id": "team-secret-id", "sha256": "{hash_key(KEY)}"}}]'


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_traffic_shows_up_in_the_metrics() -> None:
    upstream = FakeUpstream({QWEN: UpstreamScript(reply="Tolstoy.")})
    engine = FakeVLLM([ROUTE, INVALID, ANSWER])
    async with running_gateway(engine, upstream, api_keys=KEYS) as gw:
        client = gw.client.with_options(api_key=KEY)
        await client.chat.completions.create(model="router-r1", messages=QUESTION)
        await client.chat.completions.create(model="Qwen2.5-7B-Instruct", messages=QUESTION)
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="no-such-model", messages=QUESTION)
        with pytest.raises(openai.AuthenticationError):
            await gw.client.chat.completions.create(model="router-r1", messages=QUESTION)
        response = await gw.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "secret-prompt-text" not in text
    assert "team-secret-id" not in text
    assert KEY not in text
    found = samples(text)
    requests = "router_r1_requests_total"
    assert value(found, requests, profile="router-r1", model="router", status="200") == 1
    assert (
        value(found, requests, profile="passthrough", model="Qwen2.5-7B-Instruct", status="200")
        == 1
    )
    assert value(found, requests, profile="none", model="none", status="404") == 1
    assert value(found, requests, profile="none", model="none", status="401") == 1
    assert value(found, "router_r1_request_errors_total", profile="none", kind="auth") == 1
    assert value(found, "router_r1_rejections_total", reason="unauthenticated") == 1
    upstream_ok = value(
        found, "router_r1_upstream_calls_total", model="Qwen2.5-7B-Instruct", status="ok"
    )
    assert upstream_ok == 2  # the route and the passthrough
    assert value(found, "router_r1_invalid_actions_total", profile="router-r1") == 1
    assert value(found, "router_r1_routes_per_request_count", profile="router-r1") == 1
    assert value(found, "router_r1_routes_per_request_sum", profile="router-r1") == 1
    assert value(found, "router_r1_overhead_seconds_count", profile="router-r1") == 1
    assert value(found, "router_r1_policy_turn_seconds_count", profile="router-r1") == 3
    assert (
        value(found, "router_r1_cost_usd_total", profile="router-r1", model="Qwen2.5-7B-Instruct")
        > 0
    )
    assert (
        value(found, "router_r1_cost_usd_total", profile="passthrough", model="Qwen2.5-7B-Instruct")
        > 0
    )
    assert (
        value(found, "router_r1_cache_lookups_total", model="Qwen2.5-7B-Instruct", result="miss")
        == 1
    )
    assert (
        value(found, "router_r1_upstream_tokens_total", model="Qwen2.5-7B-Instruct", kind="output")
        > 0
    )
    assert (
        value(
            found, "router_r1_request_duration_seconds_count", profile="router-r1", model="router"
        )
        == 1
    )
    assert value(found, "router_r1_in_flight_requests") == 0


async def test_a_failed_stream_is_counted_with_its_error() -> None:
    async with running_gateway(FakeVLLM([ROUTE]), FakeUpstream()) as gw:
        response = await gw.http.post(
            "/v1/chat/completions",
            json={"model": "router-r1", "messages": QUESTION, "stream": True},
        )
        assert response.status_code == 200
        found = samples((await gw.http.get("/metrics")).text)
    # the script ran out after one turn: the engine failed mid-stream
    assert (
        value(found, "router_r1_request_errors_total", profile="router-r1", kind="policy_engine")
        == 1
    )
    assert (
        value(found, "router_r1_requests_total", profile="router-r1", model="router", status="503")
        == 1
    )


def worker_pids(parent: int) -> list[int]:
    """The children of ``parent`` (uvicorn's workers), from /proc."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children]


@pytest.mark.slow
def test_multiprocess_mode_merges_workers(tmp_path: Path) -> None:
    """Two uvicorn workers: /metrics on either shows every worker's requests."""
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "ROUTER_R1_REGISTRY_RELOAD_INTERVAL_S": "0",
    }
    binary = Path(sys.executable).parent / "router-r1"
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [str(binary), "serve", "--workers", "2", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_until(lambda: process.poll() is not None or port_open(port), 60, "the gateway")
        assert process.poll() is None, log.read_text()
        # the socket is bound before the workers start: wait for both (one value file each)
        wait_until(
            lambda: len(list((tmp_path / "prom").glob("counter_*.db"))) == 2, 60, "two workers"
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(20):
            with httpx.Client(base_url=base, timeout=10) as http:  # a new connection each
                response = http.post(
                    "/v1/chat/completions", json={"model": "nope", "messages": QUESTION}
                )
                assert response.status_code == 404
        with httpx.Client(base_url=base, timeout=10) as http:
            found = samples(http.get("/metrics").text)
        assert (
            value(found, "router_r1_requests_total", profile="none", model="none", status="404")
            == 20
        )
        assert value(found, "router_r1_build_info", version=gateway_version()) == 1
        # every live worker's process figures, each labelled with its pid
        cpu = [dict(labels) for name, labels in found if name == "process_cpu_seconds_total"]
        assert len(cpu) == 2
        assert {int(labels["pid"]) for labels in cpu} <= set(worker_pids(process.pid))
        assert not any(name.startswith("python_gc_") for name, _ in found)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


async def test_metrics_can_be_turned_off() -> None:
    async with running_gateway(metrics_enabled=False) as gw:
        assert (await gw.http.get("/metrics")).status_code == 404


async def test_process_gc_and_build_series_are_served() -> None:
    async with running_gateway() as gw:
        found = samples((await gw.http.get("/metrics")).text)
    names = {name for name, _ in found}
    for needed in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "python_gc_collections_total",
        "python_info",
    ):
        assert needed in names, needed
    assert value(found, "router_r1_build_info", version=gateway_version()) == 1


async def test_streams_retries_and_passthrough_fallbacks_are_counted() -> None:
    llama = "meta/llama-3.1-8b-instruct"
    upstream = FakeUpstream(
        {
            QWEN: UpstreamScript(reply="Tolstoy."),
            llama: [UpstreamScript(status=429), UpstreamScript(reply="Tolstoy.")],
        }
    )
    engine = FakeVLLM([ROUTE, ANSWER])
    async with running_gateway(engine, upstream, upstream_max_retries=2) as gw:
        stream = await gw.client.chat.completions.create(
            model="router-r1", messages=QUESTION, stream=True
        )
        async for _ in stream:
            pass
        stream = await gw.client.chat.completions.create(
            model="Qwen2.5-7B-Instruct", messages=QUESTION, stream=True
        )
        async for _ in stream:
            pass
        await gw.client.chat.completions.create(model="LLaMA-3.1-8B-Instruct", messages=QUESTION)
        found = samples((await gw.http.get("/metrics")).text)
    ttft = "router_r1_time_to_first_token_seconds_count"
    assert value(found, ttft, profile="router-r1", model="router") == 1
    assert value(found, ttft, profile="passthrough", model="Qwen2.5-7B-Instruct") == 1
    assert value(found, "router_r1_upstream_retries_total", model="LLaMA-3.1-8B-Instruct") == 1


async def test_a_passthrough_fallback_is_counted_with_how_the_model_failed() -> None:
    registry = default_registry()
    models = tuple(
        m.model_copy(update={"fallbacks": ("Qwen2.5-7B-Instruct",)})
        if m.name == "Gemma-2-27B-Instruct"
        else m
        for m in registry.models
    )
    registry = Registry(registry.spec.model_copy(update={"models": models}))
    upstream = FakeUpstream(
        {"google/gemma-2-27b-it": UpstreamScript(status=500), QWEN: UpstreamScript(reply="Hi.")}
    )
    async with running_gateway(FakeVLLM([]), upstream, registry=registry) as gw:
        await gw.client.chat.completions.create(model="Gemma-2-27B-Instruct", messages=QUESTION)
        found = samples((await gw.http.get("/metrics")).text)
    fallbacks = "router_r1_fallbacks_total"
    assert value(found, fallbacks, profile="passthrough", reason="http_error") == 1
