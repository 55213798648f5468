"""The OpenAI error envelope, and the one classifier of failures.

:func:`classify` alone maps an exception to what the client sees (status, type, code, message,
headers) and to the bounded ``kind`` label metrics count it under. Everything that answers an
error (plain responses, in-stream error events, metrics, traces, logs) goes through it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from router_model.episode.engine import EngineError, EngineUnavailable
from server.upstream.errors import UpstreamError

logger = logging.getLogger("router_r1.errors")

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed_request",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}

_KIND_BY_STATUS = {
    401: "auth",
    402: "budget",
    403: "auth",
    404: "not_found",
    408: "client_timeout",
    429: "rate_limit",
    499: "cancelled",
    503: "unavailable",
    504: "timeout",
}
"""Metric ``kind`` labels (a fixed vocabulary): these, plus ``invalid_request``, ``upstream``,
``policy_engine`` and ``internal``."""


class APIError(Exception):
    """An error the client should see as ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPE_BY_STATUS.get(status_code, "server_error")
        self.headers = dict(headers or {})
        self.kind = kind or _KIND_BY_STATUS.get(
            status_code, "invalid_request" if status_code < 500 else "internal"
        )

    def envelope(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class ClientDisconnected(Exception):
    """The client closed the connection before its response was complete."""


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code or "invalid_request")


def model_not_found(model: str) -> APIError:
    return APIError(
        404,
        f"The model {model!r} does not exist: GET /v1/models lists the router profiles "
        f"and models this gateway serves.",
        param="model",
        code="model_not_found",
    )


def client_closed() -> APIError:
    return APIError(499, "The client closed the request.", code="client_closed_request")


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid request"))
    return (f"{param}: {message}" if param else message), param


def _upstream(exc: UpstreamError) -> APIError:
    upstream = exc.envelope()["error"]
    code = upstream.get("code")
    headers = {}
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        headers["retry-after"] = str(max(1, round(retry_after)))
    param = upstream.get("param")
    return APIError(
        exc.status_code,
        str(upstream.get("message") or exc),
        type=str(upstream.get("type") or exc.error_type),
        param=param if isinstance(param, str) else None,
        code=code if isinstance(code, str) else "upstream_error",
        headers=headers,
        kind=exc.metric_kind,
    )


def classify(exc: BaseException) -> APIError:
    """What the client sees for ``exc``, and the metric kind it counts under. Pure: logs
    nothing (see :func:`is_internal` for who logs the unexpected ones)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ClientDisconnected | ClientDisconnect | asyncio.CancelledError):
        return client_closed()
    if isinstance(exc, RequestValidationError):
        message, param = _validation_message(exc)
        return APIError(400, message, param=param, code="invalid_request")
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 404:
            return APIError(
                404,
                "Not found: this gateway serves /v1/chat/completions, /v1/models, "
                "/v1/router/..., /health, /ready, /metrics and /ui.",
                code="not_found",
            )
        if exc.status_code == 405:
            return APIError(405, "Method not allowed for this path.", code="method_not_allowed")
        return APIError(exc.status_code, str(exc.detail))
    if isinstance(exc, UpstreamError):
        return _upstream(exc)
    if isinstance(exc, TimeoutError):
        return APIError(504, "The request deadline was exceeded.", code="deadline_exceeded")
    if isinstance(exc, EngineUnavailable) and exc.timed_out:
        return APIError(
            504,
            f"The policy engine timed out: {exc}",
            code="policy_engine_timeout",
            kind="policy_engine",
        )
    if isinstance(exc, EngineUnavailable):
        return APIError(
            503,
            f"The policy engine is unavailable: {exc}",
            code="policy_engine_unavailable",
            kind="policy_engine",
        )
    if isinstance(exc, EngineError):
        return APIError(
            502,
            f"The policy engine failed: {exc}",
            code="policy_engine_error",
            kind="policy_engine",
        )
    return APIError(500, "Internal server error.", code="internal_error", kind="internal")


def is_internal(exc: BaseException, error: APIError) -> bool:
    """An unexpected failure (a bug): logged with its traceback, once, by whoever records it."""
    return error.kind == "internal" and not isinstance(exc, APIError)


def error_body(error: APIError) -> bytes:
    return orjson.dumps(error.envelope())


def error_response(exc: BaseException, *, log: bool = True) -> Response:
    """The envelope response for ``exc`` (``log``: log it if it is internal; the chat path's
    lifecycle logs its own)."""
    error = classify(exc)
    if log and is_internal(exc, error):
        logger.error("unhandled error while serving a request", exc_info=exc)
    return Response(
        error_body(error),
        status_code=error.status_code,
        media_type="application/json",
        headers=error.headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        return error_response(exc)

    app.add_exception_handler(APIError, handle)
    app.add_exception_handler(RequestValidationError, handle)
    app.add_exception_handler(StarletteHTTPException, handle)
    app.add_exception_handler(Exception, handle)
