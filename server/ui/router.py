"""Mounting the trace viewer's static files on the gateway's app.

The page is public (it holds no data: every trace it shows comes from the API, with the key
the user enters), so it needs no auth of its own. It is served with a strict Content Security
Policy: scripts, styles and requests only from the gateway itself, no inline code, no frames.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).with_name("static")
UI_PATH = "/ui"
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",  # a gateway upgrade must not leave an old page cached
}


class TraceViewerFiles(StaticFiles):
    """``StaticFiles`` serving ``index.html`` for the folder, with the security headers."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        super().__init__(directory=directory, html=True)

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def mount_trace_viewer(app: FastAPI, path: str = UI_PATH) -> None:
    """Serve the page at ``path/`` (``path`` itself redirects there)."""
    app.mount(path, TraceViewerFiles(), name="trace-viewer")
