"""Errors of the passthrough calls (``chat`` / ``chat_stream``), each carrying the status the
gateway should answer with: 502 bad gateway (connect failure, garbage body, upstream 5xx, upstream
refusing the gateway's own credentials), 504 timeout, and the upstream's own 4xx/429 otherwise;
refusals of the gateway's own (never sent): 429 (the model's per-minute limits), 503 (every
deployment's circuit breaker open), 400 (too long for the model's context).

``str(error)`` is one line, fit for a log and for the client's error message.
"""

from __future__ import annotations

from typing import Any

_MAX_MESSAGE_CHARS = 500


def one_line(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    """Collapse whitespace (newlines included) and cut to ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class UpstreamError(Exception):
    """Base class; ``status_code`` is what the gateway returns, ``error_type`` the OpenAI type."""

    status_code: int = 502
    error_type: str = "upstream_error"
    code: str | None = None
    retry_after_s: float | None = None
    metric_kind: str = "upstream"
    """The ``kind`` label metrics count the failed request under (see server.errors)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        type: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.message = one_line(message)
        super().__init__(self.message)
        if status_code is not None:
            self.status_code = status_code
        if type is not None:
            self.error_type = type
        self.attempts = attempts

    @property
    def type(self) -> str:
        return self.error_type

    def envelope(self) -> dict[str, Any]:
        """The OpenAI error envelope for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": None,
                "code": self.code,
            }
        }


class UpstreamHTTPError(UpstreamError):
    """The upstream answered non-2xx. ``upstream_status_code`` is what it said;
    ``status_code`` is what the gateway should say: the upstream's 4xx (429 included) passes
    through, except 401/403 (the gateway's own upstream credentials were refused: 502); 5xx and
    anything else become 502. ``message``/``error_type`` come from the upstream's OpenAI error
    envelope when it sent one; ``body`` is the parsed upstream body (or ``None``)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        type: str | None = None,
        body: Any = None,
        *,
        attempts: int = 1,
        retry_after_s: float | None = None,
    ) -> None:
        self.upstream_status_code = status_code
        gateway_status = (
            status_code if 400 <= status_code < 500 and status_code not in (401, 403) else 502
        )
        super().__init__(
            message,
            status_code=gateway_status,
            type=type or ("rate_limit_error" if status_code == 429 else "upstream_error"),
            attempts=attempts,
        )
        self.body = body
        self.retry_after_s = retry_after_s

    def envelope(self) -> dict[str, Any]:
        """The upstream's own envelope when it sent one for a passed-through 4xx."""
        if (
            self.status_code == self.upstream_status_code
            and isinstance(self.body, dict)
            and isinstance(self.body.get("error"), dict)
        ):
            return self.body
        return super().envelope()


class UpstreamTimeoutError(UpstreamError):
    """Connect, read or total-call timeout: 504."""

    status_code = 504
    error_type = "timeout_error"
    metric_kind = "timeout"


class UpstreamConnectionError(UpstreamError):
    """Could not reach the upstream (refused, DNS, reset, disconnected): 502."""

    status_code = 502
    error_type = "upstream_error"


class UpstreamBadResponseError(UpstreamError):
    """A 2xx whose body is not a usable OpenAI response (not JSON, not an object): 502."""

    status_code = 502
    error_type = "upstream_error"


class UpstreamUnavailableError(UpstreamError):
    """Every deployment of the model has its circuit breaker open: not sent, 503 with
    ``Retry-After`` (when the first breaker lets a probe through)."""

    status_code = 503
    error_type = "service_unavailable"
    code = "upstream_unavailable"
    metric_kind = "unavailable"

    def __init__(
        self, message: str, *, attempts: int = 0, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, attempts=attempts)
        self.retry_after_s = retry_after_s


class UpstreamRateLimitedError(UpstreamError):
    """The model's own per-minute limits (registry ``limits``) refused the call: not sent,
    429 with ``Retry-After``."""

    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"
    metric_kind = "rate_limit"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message, attempts=0)
        self.retry_after_s = retry_after_s


class UpstreamContextTooLongError(UpstreamError):
    """The prompt (estimated) plus ``max_tokens`` does not fit the model's ``context_tokens``:
    not sent, 400."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "context_length_exceeded"
    metric_kind = "invalid_request"

    def __init__(self, message: str) -> None:
        super().__init__(message, attempts=0)


def call_status(exc: UpstreamError) -> str:
    """The upstream call status (as in traces and metrics) of a failed call."""
    if isinstance(exc, UpstreamRateLimitedError):
        return "rate_limited"
    if isinstance(exc, UpstreamContextTooLongError):
        return "context_too_long"
    if isinstance(exc, UpstreamUnavailableError):
        return "unavailable"
    if isinstance(exc, UpstreamTimeoutError):
        return "timeout"
    if isinstance(exc, UpstreamBadResponseError):
        return "bad_response"
    if isinstance(exc, UpstreamConnectionError):
        return "connect_error"
    return "http_error"
