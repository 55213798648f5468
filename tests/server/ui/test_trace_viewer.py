"""The trace viewer in real headless Chromium (Debian's ``chromium``, driven by Playwright;
never ``playwright install``), against the fake trace endpoints served by a real uvicorn.

The page asks for a key, lists the requests the key may read (newest first), filters them by
profile and outcome, refreshes live, and shows one request's turns in order with their models
and costs, its timeline, totals and answer, with trace text shown as text. Screenshots go to
``tests/artifacts/trace-viewer/`` (ignored by git).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from tests.fakes.trace_api import ADMIN, FakeTraceAPI, Listed
from tests.fakes.traces import LLAMA, QWEN, three_step_trace
from tests.servers.uvicorn_server import serving

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "trace-viewer"
WAIT_MS = 10_000  # every wait for the page is bounded
NOW = 1_765_000_000.0
KEYS = {"rr1-alice": "alice", "rr1-bob": "bob", "rr1-admin": ADMIN}


def requests() -> list[Listed]:
    routed = three_step_trace("chatcmpl-routed", started_at=NOW - 60)
    unanswered = three_step_trace(
        "chatcmpl-unanswered", started_at=NOW - 30, profile="router-llama"
    )
    unanswered = unanswered.model_copy(update={"outcome": "no_answer", "answer": None})
    return [
        Listed("chatcmpl-routed", NOW - 60, "alice", 200, 3104.0, trace=routed),
        Listed("chatcmpl-unanswered", NOW - 30, "bob", 200, 3100.0, trace=unanswered),
        Listed(
            "chatcmpl-pass",
            NOW - 10,
            "alice",
            502,
            420.0,
            model=QWEN,
            outcome="error",
            cost_usd=0.00002,
        ),
    ]


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh Chromium profile per test (a persistent context owns its user-data dir)."""
    if shutil.which(CHROMIUM) is None:
        raise AssertionError(f"{CHROMIUM} is missing: run scripts/bootstrap.sh (apt chromium)")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            await context.close()


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


async def rows(page: Page) -> list[str]:
    found = await page.locator("[data-testid=trace-row]").evaluate_all(
        "rows => rows.map(r => r.dataset.requestId)"
    )
    return [str(r) for r in found]


async def use_key(page: Page, key: str) -> None:
    await page.fill("#key", key)
    await page.click("#key-form button[type=submit]")


async def test_list_filter_and_timeline(browser: BrowserContext) -> None:
    api = FakeTraceAPI(requests(), KEYS)
    async with serving(api.app) as port:
        page = await browser.new_page()
        page.set_default_timeout(WAIT_MS)
        await page.goto(f"http://127.0.0.1:{port}/ui/")

        # no key yet: a clear message, nothing listed
        await expect(page.locator("#message")).to_contain_text("needs an API key")
        await screenshot(page, "01-needs-a-key")

        # the admin key reads every request, newest first
        await use_key(page, "rr1-admin")
        await expect(page.locator("[data-testid=trace-row]")).to_have_count(3)
        assert await rows(page) == ["chatcmpl-pass", "chatcmpl-unanswered", "chatcmpl-routed"]
        passthrough = page.locator("[data-request-id=chatcmpl-pass]")
        await expect(passthrough).to_contain_text("passthrough")
        await expect(passthrough).to_contain_text("HTTP 502")
        await expect(
            page.locator("[data-request-id=chatcmpl-routed] [data-testid=row-cost]")
        ).to_have_text("$0.002200")
        await screenshot(page, "02-list")

        # filters go to the API and narrow the list
        await page.select_option("#filter-profile", "router-llama")
        await expect(page.locator("[data-testid=trace-row]")).to_have_count(1)
        assert await rows(page) == ["chatcmpl-unanswered"]
        assert api.list_calls[-1]["profile"] == "router-llama"
        await page.select_option("#filter-profile", "")
        await page.select_option("#filter-outcome", "answer")
        await expect(page.locator("[data-testid=trace-row]")).to_have_count(1)
        assert await rows(page) == ["chatcmpl-routed"]
        await page.select_option("#filter-outcome", "")
        await expect(page.locator("[data-testid=trace-row]")).to_have_count(3)

        # one request: its turns in order, with models, costs, marks, timeline and totals
        await page.click("[data-request-id=chatcmpl-routed]")
        steps = page.locator("[data-testid=step]")
        await expect(steps).to_have_count(3)
        assert await steps.evaluate_all("s => s.map(e => e.dataset.index)") == ["0", "1", "2"]
        await expect(page.locator("[data-testid=step-action]")).to_have_text(
            ["route", "route", "answer"]
        )
        models = page.locator("[data-testid=step-model]")
        await expect(models).to_have_text([QWEN, f"{LLAMA} (written “llama-3.1-8b”)"])
        await expect(page.locator("[data-testid=step-cost]")).to_have_text(
            ["$0.001500", "$0.000400", "$0.000300"]
        )
        await expect(steps.nth(1)).to_contain_text("timeout")  # the failed call is marked
        await expect(steps.nth(1)).to_contain_text("150 cached")
        await expect(page.locator("[data-testid=bar-policy]")).to_have_count(3)
        await expect(page.locator("[data-testid=bar-upstream]")).to_have_count(2)
        await expect(page.locator("#timeline .bar.upstream.failed")).to_have_count(1)
        await expect(page.locator("[data-testid=total-cost]")).to_have_text("$0.002200")
        await expect(page.locator("#answer")).to_have_text("Leo Tolstoy")
        # trace text is shown as text, never parsed as HTML
        await expect(page.locator("[data-testid=step-think]").nth(1)).to_have_text(
            "Let me double-check <b>that</b>."
        )
        assert await page.locator("#steps b").count() == 0
        await screenshot(page, "03-trace")

        # back to the list; the live refresh picks up a new request
        await page.click("#back")
        await expect(page.locator("[data-testid=trace-row]")).to_have_count(3)
        await page.check("#live")
        fresh = three_step_trace("chatcmpl-fresh", started_at=NOW)
        api.requests.append(Listed("chatcmpl-fresh", NOW, "alice", 200, 3100.0, trace=fresh))
        await expect(page.locator("[data-testid=trace-row]")).to_have_count(4)
        assert (await rows(page))[0] == "chatcmpl-fresh"
        await page.uncheck("#live")


async def test_a_key_sees_only_its_own_requests(browser: BrowserContext) -> None:
    api = FakeTraceAPI(requests(), KEYS)
    async with serving(api.app) as port:
        page = await browser.new_page()
        page.set_default_timeout(WAIT_MS)
        await page.goto(f"http://127.0.0.1:{port}/ui/")
        await use_key(page, "rr1-bob")
        await expect(page.locator("[data-testid=trace-row]")).to_have_count(1)
        assert await rows(page) == ["chatcmpl-unanswered"]
        await page.reload()  # the key was kept
        await expect(page.locator("[data-testid=trace-row]")).to_have_count(1)

        await use_key(page, "rr1-wrong")
        await expect(page.locator("#message")).to_contain_text("refused the saved API key")
        await page.click("#forget-key")
        await expect(page.locator("#message")).to_contain_text("removed")

        # a trace that is not the key's own: the API's 404 message is shown
        await use_key(page, "rr1-bob")
        await page.goto(f"http://127.0.0.1:{port}/ui/#/trace/chatcmpl-routed")
        await expect(page.locator("#message")).to_contain_text("No trace for request")


async def test_open_mode_needs_no_key(browser: BrowserContext) -> None:
    api = FakeTraceAPI(requests())
    async with serving(api.app) as port:
        page = await browser.new_page()
        page.set_default_timeout(WAIT_MS)
        await page.goto(f"http://127.0.0.1:{port}/ui/")
        await expect(page.locator("[data-testid=trace-row]")).to_have_count(3)
        await expect(page.locator("#message")).to_be_hidden()
