"""``GET /metrics``: Prometheus exposition (every worker's values in multiprocess mode)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from server.deps import StateDep
from server.errors import APIError
from server.metrics.exposition import render

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(state: StateDep) -> Response:
    if not state.settings.metrics.enabled:
        raise APIError(404, "Metrics are turned off (ROUTER_R1_METRICS_ENABLED).", code="not_found")
    body, content_type = render(state.metrics)
    return Response(body, media_type=content_type)
