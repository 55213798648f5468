"""A fake of the gateway's two trace endpoints, with the trace viewer mounted at ``/ui``.

``GET /v1/router/traces?limit=&profile=&outcome=`` lists the calling key's requests newest
first (all of them for the admin key); ``GET /v1/router/traces/{request_id}`` returns one
trace. With ``keys`` the endpoints need ``Authorization: Bearer KEY`` (401 otherwise, as the
gateway answers); without, anyone may read everything (open mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from router_model.episode.trace import RouterTrace
from server.ui import mount_trace_viewer

ADMIN = "admin"


@dataclass(frozen=True)
class Listed:
    """One request as the list shows it, and its trace (None for a passthrough request)."""

    request_id: str
    created: float
    key_id: str
    status: int
    latency_ms: float
    trace: RouterTrace | None = None
    model: str | None = None
    outcome: str = "answer"
    cost_usd: float = 0.0

    def summary(self) -> dict[str, Any]:
        trace = self.trace
        return {
            "request_id": self.request_id,
            "created": self.created,
            "key_id": self.key_id,
            "mode": "episode" if trace is not None else "passthrough",
            "profile": trace.profile if trace is not None else None,
            "model": self.model,
            "outcome": trace.outcome if trace is not None else self.outcome,
            "status": self.status,
            "routes": trace.totals.routes if trace is not None else 0,
            "cost_usd": trace.totals.cost_usd if trace is not None else self.cost_usd,
            "latency_ms": self.latency_ms,
        }


def _error(status: int, message: str, code: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return JSONResponse(body, status_code=status)


@dataclass
class FakeTraceAPI:
    """``keys`` maps an API key to its key id (the id ``admin`` reads every trace)."""

    requests: list[Listed] = field(default_factory=list)
    keys: Mapping[str, str] = field(default_factory=dict)
    list_calls: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = FastAPI()
        self.app.add_api_route("/v1/router/traces", self._list, methods=["GET"])
        self.app.add_api_route("/v1/router/traces/{request_id}", self._get, methods=["GET"])
        mount_trace_viewer(self.app)

    def _caller(self, request: Request) -> str | JSONResponse | None:
        if not self.keys:
            return None  # open mode: everything is readable
        header = request.headers.get("authorization", "")
        key_id = self.keys.get(header.removeprefix("Bearer ").strip())
        if key_id is None:
            return _error(401, "Invalid or missing API key.", "invalid_api_key")
        return key_id

    def _visible(self, caller: str | None) -> list[Listed]:
        return [r for r in self.requests if caller in (None, ADMIN) or r.key_id == caller]

    async def _list(
        self,
        request: Request,
        limit: int = Query(50, ge=1, le=500),
        profile: str | None = None,
        outcome: str | None = None,
    ) -> Response:
        caller = self._caller(request)
        if isinstance(caller, JSONResponse):
            return caller
        self.list_calls.append(dict(request.query_params))
        rows = [r.summary() for r in self._visible(caller)]
        rows = [r for r in rows if profile is None or r["profile"] == profile]
        rows = [r for r in rows if outcome is None or r["outcome"] == outcome]
        rows.sort(key=lambda r: r["created"], reverse=True)
        body = {"object": "list", "data": rows[:limit], "has_more": len(rows) > limit}
        return JSONResponse(body)

    async def _get(self, request_id: str, request: Request) -> Response:
        caller = self._caller(request)
        if isinstance(caller, JSONResponse):
            return caller
        found = next((r for r in self._visible(caller) if r.request_id == request_id), None)
        if found is None or found.trace is None:
            return _error(404, f"No trace for request {request_id!r}.", "trace_not_found")
        return Response(found.trace.model_dump_json(), media_type="application/json")
