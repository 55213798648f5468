"""``GET /v1/router/traces`` (recent requests, newest first: the calling key's own, everyone's
for an admin key), ``GET /v1/router/traces/{request_id}`` (one request's ``router`` trace, for
the key that made it or an admin key) and ``GET /v1/router/usage`` (the calling key's
counters)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from server.deps import CallerDep, StateDep
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


MAX_LISTED = 200


@router.get("/v1/router/traces")
async def list_traces(
    state: StateDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 50,
    profile: Annotated[str | None, Query(max_length=128)] = None,
    outcome: Annotated[str | None, Query(max_length=32)] = None,
) -> dict[str, Any]:
    try:
        found = await state.traces.summaries(
            None if caller.admin else caller.id, limit + 1, profile=profile, outcome=outcome
        )
    except StoreUnavailable:
        raise _store_unavailable() from None
    return {
        "object": "list",
        "data": [summary.model_dump(mode="json") for summary in found[:limit]],
        "has_more": len(found) > limit,
    }


@router.get("/v1/router/traces/{request_id}", response_model=None)
async def get_trace(request_id: str, state: StateDep, caller: CallerDep) -> Response:
    try:
        # the caller's own trace of that id (an admin: whoever's); another key's is not found
        stored = await state.traces.get(request_id, None if caller.admin else caller.id)
    except StoreUnavailable:
        raise _store_unavailable() from None
    if stored is None or not caller.may_read(stored.owner):
        raise APIError(
            404,
            f"No trace for request {request_id!r}: traces are kept "
            f"{state.traces.ttl_s:g} s and shown only to the key that made the request.",
            param="request_id",
            code="trace_not_found",
        )
    return Response(stored.trace, media_type="application/json")


@router.get("/v1/router/usage")
async def get_usage(state: StateDep, caller: CallerDep) -> dict[str, Any]:
    try:
        usage = await state.access.usage(caller)
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
