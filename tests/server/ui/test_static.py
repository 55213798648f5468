"""The trace viewer's files are served at /ui with a strict Content Security Policy, and the
script never parses trace content as HTML."""

from __future__ import annotations

import re

import httpx

from server.ui import STATIC_DIR
from tests.fakes.trace_api import FakeTraceAPI


async def get(path: str) -> httpx.Response:
    app = FakeTraceAPI().app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        return await client.get(path, follow_redirects=False)


async def test_the_page_and_its_assets_are_served() -> None:
    page = await get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Router-R1 traces</title>" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = await get(f"/ui/{asset}")
        assert response.status_code == 200
        assert kind in response.headers["content-type"]


async def test_ui_without_a_slash_redirects_to_the_page() -> None:
    response = await get("/ui")
    assert response.status_code in (307, 308)
    assert response.headers["location"].endswith("/ui/")


def test_the_files_ship_in_the_package_and_load_nothing_from_elsewhere() -> None:
    assert sorted(p.name for p in STATIC_DIR.iterdir()) == ["app.js", "index.html", "style.css"]
    html = (STATIC_DIR / "index.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script>" not in html  # no inline script: the CSP would block it anyway


def test_the_script_never_parses_content_as_html() -> None:
    script = (STATIC_DIR / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
