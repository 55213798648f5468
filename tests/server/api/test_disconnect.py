"""A client that goes away cancels the episode's in-flight engine and upstream calls."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from starlette.types import Message

from server.app import create_app
from server.settings import Settings
from tests.fakes.registry import default_registry
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM, ScriptedTurn

ROUTE = "<think>ask</think>\n<search> Qwen2.5-7B-Instruct:who </search>"


async def _call_then_leave(
    app: Any, body: dict[str, Any], leave_after_s: float, *, client_reads: bool = True
) -> list[Message]:
    """``client_reads=False``: the server's first send blocks (a client that reads nothing)."""
    raw = json.dumps(body).encode()
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.sleep(leave_after_s)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if not client_reads:
            await asyncio.sleep(30)
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "server": ("gw.test", 80),
        "client": ("c", 1),
        "headers": [(b"content-type", b"application/json"), (b"host", b"gw.test")],
    }
    await app(scope, receive, send)
    return sent


def _gateway(
    engine: FakeVLLM | None = None, upstream: FakeUpstream | None = None, **settings: Any
) -> Any:
    return create_app(
        Settings.from_flat(settings),
        registry=default_registry(),
        engine_transport=httpx.ASGITransport(app=(engine or FakeVLLM()).app),
        upstream_transport=httpx.ASGITransport(app=(upstream or FakeUpstream()).app),
    )


async def test_disconnect_cancels_a_slow_upstream_call() -> None:
    upstream = FakeUpstream({"qwen/qwen2.5-7b-instruct": UpstreamScript(delay_s=30)})
    engine = FakeVLLM([ROUTE, "<answer> x </answer>"])
    app = _gateway(engine, upstream, upstream_total_timeout_s=60)
    body = {"model": "router-r1", "messages": [{"role": "user", "content": "q"}]}
    async with app.router.lifespan_context(app):
        started = time.perf_counter()
        await _call_then_leave(app, body, leave_after_s=0.2)
        elapsed = time.perf_counter() - started
    assert elapsed < 5
    assert len(upstream.calls) == 1  # it was in flight, and was abandoned
    assert len(engine.completions) == 1  # the episode did not go on to a second turn


async def test_disconnect_cancels_a_slow_policy_turn() -> None:
    engine = FakeVLLM([ScriptedTurn(text="<answer> x </answer>", delay_s=30)])
    app = _gateway(engine)
    body = {"model": "router-r1", "messages": [{"role": "user", "content": "q"}]}
    async with app.router.lifespan_context(app):
        started = time.perf_counter()
        await _call_then_leave(app, body, leave_after_s=0.2)
    assert time.perf_counter() - started < 5


async def test_leaving_a_stream_cancels_the_episode_and_closes_its_account() -> None:
    upstream = FakeUpstream({"qwen/qwen2.5-7b-instruct": UpstreamScript(delay_s=30)})
    engine = FakeVLLM([ROUTE, "<answer> x </answer>"])
    app = _gateway(engine, upstream, upstream_total_timeout_s=60)
    body = {"model": "router-r1", "stream": True, "messages": [{"role": "user", "content": "q"}]}
    async with app.router.lifespan_context(app):
        started = time.perf_counter()
        sent = await _call_then_leave(app, body, leave_after_s=0.2)
        elapsed = time.perf_counter() - started
        metrics = app.state.router_r1.metrics
        in_flight = metrics.registry.get_sample_value("router_r1_in_flight_requests")
        cancelled = metrics.registry.get_sample_value(
            "router_r1_requests_total", {"profile": "router-r1", "model": "router", "status": "499"}
        )
    assert elapsed < 5
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 200
    assert sent[-1].get("more_body") is True  # the stream was cut, not finished
    assert len(upstream.calls) == 1
    assert len(engine.completions) == 1
    assert in_flight == 0
    assert cancelled == 1


async def test_leaving_before_a_passthrough_stream_starts_frees_everything() -> None:
    app = _gateway()
    body = {
        "model": "Gemma-2-27B-Instruct",
        "stream": True,
        "messages": [{"role": "user", "content": "q"}],
    }
    async with app.router.lifespan_context(app):
        sent = await asyncio.wait_for(
            _call_then_leave(app, body, leave_after_s=0.2, client_reads=False), timeout=5
        )
        metrics = app.state.router_r1.metrics
        in_flight = metrics.registry.get_sample_value("router_r1_in_flight_requests")
        cancelled = metrics.registry.get_sample_value(
            "router_r1_requests_total",
            {"profile": "passthrough", "model": "Gemma-2-27B-Instruct", "status": "499"},
        )
    assert sent == []
    assert in_flight == 0
    assert cancelled == 1
