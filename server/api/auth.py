"""A route dependency: the request must carry a valid API key (unless in open mode)."""

from __future__ import annotations

from fastapi import Request

from server.api.chat_completions.serving import state_of


async def require_api_key(request: Request) -> None:
    state_of(request).ops.access.authenticate(request.headers.get("authorization"))
