"""``GET /health`` (the process is alive) and ``GET /ready`` (it can serve requests)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from server.api.health.status import operations_status
from server.deps import StateDep
from server.errors import APIError, error_response

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", response_model=None)
async def ready(state: StateDep) -> dict[str, Any] | Response:
    registry = state.registry.get()
    engines = await state.engines.readiness(registry)
    body: dict[str, Any] = {
        "registry": {"source": registry.source, "loaded": True},
        "policy_engines": engines,
    }
    body.update(await operations_status(state))  # informational: never makes it unready
    down = sorted(name for name, up in engines.items() if not up)
    if down:
        message = "Policy engine not reachable for profile(s): " + ", ".join(down)
        return error_response(APIError(503, message, code="not_ready"))
    body["status"] = "ready"
    return body
