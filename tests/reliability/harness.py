"""The gateway under fault injection: fakes that misbehave on demand, and what every case checks.

:func:`faulty_gateway` runs the real app (its lifespan included) with an API key, the packaged
registry pointed at a :class:`MisbehavingUpstream` (in-process, or over TCP through the
gateway's real aiohttp transport) and a policy engine (a :class:`FakeVLLM` in-process, or any
ASGI app over TCP through the engine's real transport). The :class:`Harness` it yields reads
the metrics' status labels, the key's spend (``GET /v1/router/usage``), the store, and the
log records, so each case can assert the same things: a bounded time, the OpenAI envelope or
a clean answer, the right status in metrics, spend equal to what the upstreams and the
engine reported, no traceback in the log, nothing stale.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import openai
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Message

from router_model.registry import Pricing, Registry
from server.app import create_app
from server.settings import Settings
from server.state import AppState
from tests.fakes.misbehaving_upstream import MisbehavingUpstream
from tests.fakes.registry import REGISTRY_FILE
from tests.fakes.vllm_server import FakeVLLM
from tests.server.operations.conftest import key_entry, keys_json
from tests.servers.in_process import sdk_client
from tests.servers.uvicorn_server import serving

KEY = "rr1-reliability-key"
PROFILE = "router-r1"
QWEN = "Qwen2.5-7B-Instruct"  # a pool model; its upstream id:
QWEN_UPSTREAM = "qwen/qwen2.5-7b-instruct"
QWEN_PRICE = 0.3 / 1e6  # USD per token, input and output
QUESTION = [{"role": "user", "content": "Who wrote the novel War and Peace?"}]
ROUTE = (
    "<think>I should ask.</think>\n<search> Qwen2.5-7B-Instruct:who wrote war and peace </search>"
)
ANSWER = "<think>Now I know.</think>\n<answer> Leo Tolstoy </answer>"
BOUND_S = 20.0  # no case may take longer: a hang shows as a failure, not a stuck suite


@dataclass
class Harness:
    app: FastAPI
    client: openai.AsyncOpenAI  # with the key
    http: httpx2.AsyncClient  # raw, with the key
    upstream: MisbehavingUpstream
    engine: FakeVLLM | None

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.router_r1
        return state

    def metric(self, name: str, **labels: str) -> float:
        return self.state.metrics.registry.get_sample_value(name, labels) or 0.0

    def requests(self, status: int, profile: str = PROFILE, model: str = "router") -> float:
        return self.metric(
            "router_r1_requests_total", profile=profile, model=model, status=str(status)
        )

    def statuses(self) -> dict[str, float]:
        """Every ``router_r1_requests_total`` sample: ``"profile/model/status"`` → count."""
        found: dict[str, float] = {}
        for family in self.state.metrics.registry.collect():
            if family.name != "router_r1_requests":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.value:
                    labels = sample.labels
                    key = f"{labels['profile']}/{labels['model']}/{labels['status']}"
                    found[key] = sample.value
        return found

    @property
    def in_flight(self) -> float:
        return self.metric("router_r1_in_flight_requests")

    async def spend(self) -> float:
        """The key's spend this budget period, as ``GET /v1/router/usage`` reports it."""
        await self.state.background.drain(5.0)  # spend is written after the response
        response = await self.http.get("/v1/router/usage")
        assert response.status_code == 200, response.text
        value: float = response.json()["budget"]["spend_usd"]
        return value

    async def trace(self, request_id: str) -> dict[str, Any]:
        await self.state.background.drain(5.0)
        response = await self.http.get(f"/v1/router/traces/{request_id}")
        assert response.status_code == 200, response.text
        trace: dict[str, Any] = response.json()
        return trace


class UsageTap:
    """Wraps an engine's ASGI app and keeps every ``usage`` object its responses carried
    (plain JSON or SSE events): what the engine reported it spent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.reported: list[dict[str, int]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        buffer = bytearray()

        async def tapped(message: Message) -> None:
            if message["type"] == "http.response.body":
                buffer.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    self._collect(bytes(buffer))
            await send(message)

        await self.app(scope, receive, tapped)

    def _collect(self, raw: bytes) -> None:
        texts = [raw]
        if raw.startswith(b"data:"):
            texts = [line[5:].strip() for line in raw.splitlines() if line.startswith(b"data:")]
        for text in texts:
            try:
                payload = json.loads(text)
            except ValueError:
                continue
            if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
                self.reported.append(payload["usage"])

    def tokens(self) -> int:
        return sum(u["prompt_tokens"] + u["completion_tokens"] for u in self.reported)


def upstream_spend(upstream: MisbehavingUpstream, price_per_token: float = QWEN_PRICE) -> float:
    """What the upstream reported it was owed: the usage it sent, at the model's price."""
    total = 0
    for request in upstream.received:
        if request.reported_usage is not None:
            usage = request.reported_usage
            total += usage["prompt_tokens"] + usage["completion_tokens"]
    return total * price_per_token


POLICY_PRICE = 1.0 / 1e6  # USD per policy token, input and output: so policy turns cost


def registry_for(
    upstream_url: str | None = None,
    engine_url: str | None = None,
    policy_endpoint: dict[str, Any] | None = None,
    **limits: Any,
) -> Registry:
    """The packaged registry pointed at the fakes; its profile's policy turns priced at
    :data:`POLICY_PRICE`, ``limits`` replaced, the policy endpoint's fields replaced by
    ``policy_endpoint`` (its ``read_timeout_s``, ...)."""
    environ = {}
    if upstream_url is not None:
        environ["NIM_BASE_URL"] = upstream_url
    if engine_url is not None:
        environ["ROUTER_R1_POLICY_URL"] = engine_url
    registry = Registry.from_file(REGISTRY_FILE, environ=environ)
    price = Pricing(input_per_1m=POLICY_PRICE * 1e6, output_per_1m=POLICY_PRICE * 1e6)
    profiles = tuple(
        p.model_copy(
            update={
                "policy": p.policy.model_copy(update={"pricing": price}),
                "limits": p.limits.model_copy(update=limits),
            }
        )
        for p in registry.spec.profiles
    )
    endpoints = dict(registry.spec.endpoints)
    endpoints["policy"] = endpoints["policy"].model_copy(update=policy_endpoint or {})
    spec = registry.spec.model_copy(update={"profiles": profiles, "endpoints": endpoints})
    return Registry(spec, registry.source)


@asynccontextmanager
async def faulty_gateway(
    upstream: MisbehavingUpstream | None = None,
    engine: FakeVLLM | ASGIApp | None = None,
    *,
    tcp_upstream: bool = False,
    tcp_engine: bool | str = False,
    limits: dict[str, Any] | None = None,
    policy_endpoint: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[Harness]:
    """The gateway with these fakes; ``tcp_*``: reach that fake over a real socket
    (``tcp_engine`` may be a URL instead: an engine that is not there). ``limits``: the
    profile's limits replaced; ``policy_endpoint``: the policy endpoint's fields."""
    upstream = upstream or MisbehavingUpstream()
    engine = engine if engine is not None else FakeVLLM()
    engine_app: ASGIApp = engine.app if isinstance(engine, FakeVLLM) else engine
    defaults: dict[str, Any] = {
        "upstream_backoff_base_s": 0.001,
        "upstream_total_timeout_s": 5.0,
        "upstream_max_retries": 0,
        "api_keys": keys_json(key_entry("reliability", KEY, budget_usd=100.0)),
    }
    async with AsyncExitStack() as stack:
        upstream_url = engine_url = None
        upstream_transport: httpx.AsyncBaseTransport | None = upstream.transport()
        engine_transport: httpx.AsyncBaseTransport | None = httpx.ASGITransport(app=engine_app)
        if tcp_upstream:
            upstream_url = await stack.enter_async_context(upstream.served())
            upstream_transport = None
        if isinstance(tcp_engine, str):
            engine_url, engine_transport = tcp_engine, None
        elif tcp_engine:
            port = await stack.enter_async_context(serving(engine_app))
            engine_url = f"http://127.0.0.1:{port}/v1"
            engine_transport = None
        app = create_app(
            Settings.from_flat({**defaults, **settings}),
            registry=registry_for(upstream_url, engine_url, policy_endpoint, **(limits or {})),
            engine_transport=engine_transport,
            upstream_transport=upstream_transport,
        )
        client, http = await stack.enter_async_context(sdk_client(app))
        http.headers["authorization"] = f"Bearer {KEY}"
        yield Harness(
            app,
            client.with_options(api_key=KEY),
            http,
            upstream,
            engine if isinstance(engine, FakeVLLM) else None,
        )


# ---------------------------------------------------------------------------- the log


def tracebacks(
    records: Iterable[logging.LogRecord], expected_errors: Sequence[str] = ()
) -> list[str]:
    """Records with a traceback, and ERROR records from loggers not in ``expected_errors``
    (an outage an operator must see is one ERROR line, without a traceback)."""
    return [
        f"{r.levelname} {r.name}: {r.getMessage()}"
        for r in records
        if r.exc_info is not None or (r.levelno >= logging.ERROR and r.name not in expected_errors)
    ]


def assert_clean_log(caplog: pytest.LogCaptureFixture, expected_errors: Sequence[str] = ()) -> None:
    assert tracebacks(caplog.records, expected_errors) == []


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The ``router_r1.access`` records' fields."""
    return [
        {k: v for k, v in r.__dict__.items() if k in ACCESS_FIELDS}
        for r in caplog.records
        if r.name == "router_r1.access"
    ]


ACCESS_FIELDS = ("status", "latency_ms", "profile", "model", "routes", "cost_usd", "error")


# ---------------------------------------------------------------------------- raw ASGI clients


def chat_scope(*, headers: Sequence[tuple[bytes, bytes]] = ()) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "server": ("gateway.test", 80),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"content-type", b"application/json"),
            (b"host", b"gateway.test"),
            (b"authorization", f"Bearer {KEY}".encode()),
            *headers,
        ],
    }


async def asgi_call(
    app: ASGIApp,
    body_parts: Sequence[bytes],
    *,
    then: str = "wait",
    leave_after_s: float = 0.0,
    read: bool = True,
) -> list[Message]:
    """Call ``app`` as a server would, the body in ``body_parts`` (the last one may be
    incomplete). ``then``: after the parts, ``"wait"`` for the response (a disconnect after
    ``leave_after_s`` when set), ``"leave"`` (disconnect at once: left while sending the
    body), or ``"stall"`` (send nothing more, never leave). ``read=False``: the client reads
    nothing (the first send blocks). Returns the messages the app sent."""
    parts = list(body_parts)
    sent: list[Message] = []
    complete = then == "wait"

    async def receive() -> Message:
        if parts:
            data = parts.pop(0)
            return {"type": "http.request", "body": data, "more_body": bool(parts) or not complete}
        if then == "stall":
            await asyncio.sleep(3600)
        if then == "wait":
            if not leave_after_s:
                await asyncio.sleep(3600)
            await asyncio.sleep(leave_after_s)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if not read:
            await asyncio.sleep(3600)
        sent.append(message)

    async with asyncio.timeout(BOUND_S):
        await app(chat_scope(), receive, send)
    return sent


def body_of(messages: Sequence[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


def status_of(messages: Sequence[Message]) -> int | None:
    for message in messages:
        if message["type"] == "http.response.start":
            status: int = message["status"]
            return status
    return None


def request_bytes(**fields: Any) -> bytes:
    return json.dumps({"model": PROFILE, "messages": QUESTION, **fields}).encode()
