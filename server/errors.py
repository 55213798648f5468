"""The OpenAI error envelope: one exception type, and one function mapping any exception to it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from server.engines.base import EngineError, EngineUnavailable
from server.upstream.errors import UpstreamError

logger = logging.getLogger("router_r1.errors")

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


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
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPE_BY_STATUS.get(status_code, "server_error")
        self.headers = dict(headers or {})

    def envelope(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


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


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid request"))
    return (f"{param}: {message}" if param else message), param


def to_api_error(exc: BaseException) -> APIError:
    """Map any exception raised while serving a request to the error the client sees."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, RequestValidationError):
        message, param = _validation_message(exc)
        return APIError(400, message, param=param, code="invalid_request")
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 404:
            return APIError(
                404,
                "Not found: this gateway serves /v1/chat/completions, "
                "/v1/models, /health and /ready.",
                code="not_found",
            )
        if exc.status_code == 405:
            return APIError(405, "Method not allowed for this path.", code="method_not_allowed")
        return APIError(exc.status_code, str(exc.detail))
    if isinstance(exc, UpstreamError):
        upstream = exc.envelope()["error"]
        code = upstream.get("code")
        headers = {}
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            headers["retry-after"] = str(max(1, round(retry_after)))
        return APIError(
            exc.status_code,
            str(upstream.get("message") or exc),
            type=str(upstream.get("type") or exc.error_type),
            param=upstream.get("param") if isinstance(upstream.get("param"), str) else None,
            code=code if isinstance(code, str) else "upstream_error",
            headers=headers,
        )
    if isinstance(exc, TimeoutError):
        return APIError(504, "The request deadline was exceeded.", code="deadline_exceeded")
    if isinstance(exc, EngineUnavailable) and exc.timed_out:
        return APIError(504, f"The policy engine timed out: {exc}", code="policy_engine_timeout")
    if isinstance(exc, EngineUnavailable):
        return APIError(
            503, f"The policy engine is unavailable: {exc}", code="policy_engine_unavailable"
        )
    if isinstance(exc, EngineError):
        return APIError(502, f"The policy engine failed: {exc}", code="policy_engine_error")
    logger.exception("unhandled error while serving a request", exc_info=exc)
    return APIError(500, "Internal server error.", code="internal_error")


def error_response(exc: BaseException, headers: Mapping[str, str] | None = None) -> Response:
    error = to_api_error(exc)
    return Response(
        orjson.dumps(error.envelope()),
        status_code=error.status_code,
        media_type="application/json",
        headers={**error.headers, **(headers or {})},
    )


def sse_error_event(exc: BaseException) -> bytes:
    """An error after a stream started: one SSE event with the envelope (then ``[DONE]``)."""
    return b"data: " + orjson.dumps(to_api_error(exc).envelope()) + b"\n\n"


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        return error_response(exc)

    app.add_exception_handler(APIError, handle)
    app.add_exception_handler(RequestValidationError, handle)
    app.add_exception_handler(StarletteHTTPException, handle)
    app.add_exception_handler(Exception, handle)
