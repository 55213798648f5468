"""The trace viewer as the gateway serves it (``/ui``), in real headless Chromium: a real
uvicorn serving the gateway (fake engine and upstream), episodes and a passthrough made
through the official SDK with a key, then the page lists them (the key's own only) and opens
one: its turns in order, with the models and costs the API reports. Screenshots go to
``tests/artifacts/gateway-viewer/``; ``docs/trace-viewer.png`` is the trace one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import openai
import pytest
from playwright.async_api import BrowserContext, expect

from server.app import create_app
from server.settings import Settings
from tests.fakes.registry import default_registry
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM
from tests.server.ui.test_trace_viewer import ARTIFACTS, WAIT_MS, browser, rows, use_key
from tests.servers.uvicorn_server import serving

__all__ = ["browser"]  # the fixture, shared with the fake-API tests
pytestmark = pytest.mark.slow

SHOTS = ARTIFACTS.parent / "gateway-viewer"
QWEN_UPSTREAM = "qwen/qwen2.5-7b-instruct"
ROUTE_QWEN = (
    "<think>I should ask a model.</think>\n"
    "<search> Qwen2.5-7B-Instruct:who wrote war and peace </search>"
)
ANSWER = "<think>Qwen says Tolstoy.</think>\n<answer> Leo Tolstoy </answer>"
DIRECT = "<think>I know this one.</think>\n<answer> Paris </answer>"
KEYS = {"rr1-alice": "alice", "rr1-bob": "bob"}


def key_entries() -> str:
    return json.dumps(
        [
            {"id": kid, "sha256": hashlib.sha256(key.encode()).hexdigest()}
            for key, kid in KEYS.items()
        ]
    )


async def test_the_gateway_serves_the_viewer_over_its_own_traces(
    browser: BrowserContext,
) -> None:
    engine = FakeVLLM([ROUTE_QWEN, ANSWER, DIRECT])
    upstream = FakeUpstream({QWEN_UPSTREAM: UpstreamScript(reply="Leo Tolstoy wrote it.")})
    app = create_app(
        Settings.from_flat({"api_keys": key_entries(), "upstream_backoff_base_s": 0.001}),
        registry=default_registry(),
        engine_transport=httpx.ASGITransport(app=engine.app),
        upstream_transport=httpx.ASGITransport(app=upstream.app),
    )
    async with serving(app) as port:
        base = f"http://127.0.0.1:{port}"
        async with (
            openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="rr1-alice", max_retries=0) as alice,
            openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="rr1-bob", max_retries=0) as bob,
        ):
            routed = await alice.chat.completions.create(
                model="router-r1",
                messages=[{"role": "user", "content": "Who wrote War and Peace?"}],
            )
            await alice.chat.completions.create(
                model="Qwen2.5-7B-Instruct", messages=[{"role": "user", "content": "Hello"}]
            )
            await bob.chat.completions.create(
                model="router-r1", messages=[{"role": "user", "content": "Capital of France?"}]
            )
        routed_id = routed.id.removeprefix("chatcmpl-")
        async with httpx.AsyncClient(base_url=base) as http:
            page_response = await http.get("/ui/")
            trace: dict[str, Any] = (
                await http.get(
                    f"/v1/router/traces/{routed_id}",
                    headers={"authorization": "Bearer rr1-alice"},
                )
            ).json()
        assert page_response.status_code == 200
        assert "default-src 'none'" in page_response.headers["content-security-policy"]

        page = await browser.new_page()
        page.set_default_timeout(WAIT_MS)
        await page.goto(f"{base}/ui/")
        await expect(page.locator("#message")).to_contain_text("needs an API key")
        await use_key(page, "rr1-alice")
        listed = page.locator("[data-testid=trace-row]")
        await expect(listed).to_have_count(2)  # alice's two, not bob's
        ids = await rows(page)
        assert ids[1] == routed_id  # newest first: the passthrough came after the episode
        await expect(page.locator(f"[data-request-id='{ids[0]}']")).to_contain_text("passthrough")
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / "01-list.png"), full_page=True)

        await page.click(f"[data-request-id='{routed_id}']")
        steps = page.locator("[data-testid=step]")
        await expect(steps).to_have_count(2)
        await expect(page.locator("[data-testid=step-action]")).to_have_text(["route", "answer"])
        await expect(page.locator("[data-testid=step-model]")).to_have_text(["Qwen2.5-7B-Instruct"])
        costs = [f"${step['cost_usd']:.6f}" for step in trace["steps"]]
        await expect(page.locator("[data-testid=step-cost]")).to_have_text(costs)
        await expect(page.locator("[data-testid=total-cost]")).to_have_text(
            f"${trace['totals']['cost_usd']:.6f}"
        )
        await expect(page.locator("[data-testid=bar-upstream]")).to_have_count(1)
        await expect(page.locator("#answer")).to_have_text("Leo Tolstoy")
        await page.screenshot(path=str(SHOTS / "02-trace.png"), full_page=True)
