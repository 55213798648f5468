"""``GET /v1/router/traces/{request_id}`` (a recent request's ``router`` trace, for the key
that made it or an admin key) and ``GET /v1/router/usage`` (the calling key's counters)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from server.api.chat_completions.serving import state_of
from server.errors import APIError
from server.store.base import StoreUnavailable
from server.store.windows import budget_window, minute_window

router = APIRouter()


def _store_unavailable() -> APIError:
    return APIError(
        503,
        "The shared store is unavailable; retry shortly.",
        code="store_unavailable",
        headers={"retry-after": "1"},
    )


@router.get("/v1/router/traces/{request_id}", response_model=None)
async def get_trace(request_id: str, request: Request) -> Response:
    ops = state_of(request).ops
    caller = ops.access.authenticate(request.headers.get("authorization"))
    try:
        # the caller's own trace of that id (an admin: whoever's); another key's is not found
        stored = await ops.traces.get(request_id, None if caller.admin else caller.id)
    except StoreUnavailable:
        raise _store_unavailable() from None
    if stored is None or not caller.may_read(stored.owner):
        raise APIError(
            404,
            f"No trace for request {request_id!r}: traces are kept "
            f"{ops.traces.ttl_s:g} s and shown only to the key that made the request.",
            param="request_id",
            code="trace_not_found",
        )
    return Response(stored.trace, media_type="application/json")


@router.get("/v1/router/usage")
async def get_usage(request: Request) -> dict[str, Any]:
    ops = state_of(request).ops
    caller = ops.access.authenticate(request.headers.get("authorization"))
    try:
        usage = await ops.access.usage(caller)
    except StoreUnavailable:
        raise _store_unavailable() from None
    key = caller.key
    body: dict[str, Any] = {"object": "router.usage", "key": caller.id}
    if key is None:
        return body
    now = time.time()
    body.update(
        {
            "minute": {
                "window": minute_window(now).id,
                "requests": usage.requests,
                "tokens": usage.tokens,
                "requests_per_minute": key.requests_per_minute,
                "tokens_per_minute": key.tokens_per_minute,
            },
            "budget": {
                "period": key.budget_period,
                "window": budget_window(now, key.budget_period).id,
                "spend_usd": usage.spend_usd,
                "budget_usd": key.budget_usd,
            },
        }
    )
    return body
