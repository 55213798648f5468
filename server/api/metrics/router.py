"""``GET /metrics``: Prometheus exposition (every worker's values in multiprocess mode)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from server.api.chat_completions.serving import state_of
from server.errors import APIError
from server.metrics.exposition import render

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    ops = state_of(request).ops
    if not ops.settings.metrics_enabled:
        raise APIError(404, "Metrics are turned off (ROUTER_R1_METRICS_ENABLED).", code="not_found")
    body, content_type = render(ops.metrics)
    return Response(body, media_type=content_type)
