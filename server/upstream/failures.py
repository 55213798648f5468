"""What went wrong with one upstream attempt, classified precisely enough to retry safely.

The question that matters for a retry is whether the upstream may have processed (and billed)
the request. :func:`transport_failure` answers it from the exception: aiohttp's own error
(the ``__cause__`` of the httpx error httpx_aiohttp raises: it maps a refused connection, a
reset and a server hanging up all to ``httpx.ConnectTimeout``) or httpx's (an injected
transport). A connection that was never established (refused, DNS, TLS, connect timeout) or a
request that could not be written cannot have been processed: ``sent`` is False. A reset, a
disconnect or a read timeout after the request was written may have been: ``sent`` is True,
and the message says what happened (never "ConnectTimeout" for a reset).
"""

from __future__ import annotations

import email.utils
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx
import orjson

from router_model.episode.route import UpstreamStatus
from server.upstream.errors import (
    UpstreamBadResponseError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    one_line,
)

logger = logging.getLogger("router_r1.upstream")

CLOSED_AFTER_SEND = "the upstream closed the connection after the request was sent"
RESET_AFTER_SEND = "the connection to the upstream was reset after the request was sent"


@dataclass
class CallFailure:
    """One failed attempt. ``sent``: the upstream may have processed the request (so a retry
    may duplicate it); False only when it certainly did not."""

    status: UpstreamStatus
    message: str
    sent: bool = True
    http_status: int | None = None
    body: Any = None
    error_type: str | None = None
    retry_after_s: float | None = None

    @property
    def counts_against_deployment(self) -> bool:
        """Whether the deployment's circuit breaker counts it: the server did not answer
        (connect error, timeout) or answered 5xx/garbage; a 4xx (429 included) is the
        request's or the quota's, not the server's health."""
        if self.status == "http_error":
            return self.http_status is not None and self.http_status >= 500
        return self.status in ("connect_error", "timeout", "bad_response")

    def to_error(self, attempts: int) -> UpstreamError:
        if self.status == "http_error" and self.http_status is not None:
            return UpstreamHTTPError(
                self.http_status,
                self.message,
                self.error_type,
                self.body,
                attempts=attempts,
                retry_after_s=self.retry_after_s,
            )
        if self.status == "timeout":
            return UpstreamTimeoutError(self.message, attempts=attempts)
        if self.status == "bad_response":
            return UpstreamBadResponseError(self.message, attempts=attempts)
        if self.status == "unavailable":
            return UpstreamUnavailableError(
                self.message, attempts=attempts, retry_after_s=self.retry_after_s
            )
        return UpstreamConnectionError(self.message, attempts=attempts)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def transport_failure(exc: Exception) -> CallFailure:
    """The failure of an attempt that raised before a response arrived."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError):
        return _aiohttp_failure(cause)
    text = _text(exc)
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return CallFailure("connect_error", f"could not connect in time ({text})", sent=False)
    if isinstance(exc, httpx.ConnectError | httpx.ProxyError):
        return CallFailure("connect_error", f"cannot connect to the upstream ({text})", sent=False)
    if isinstance(exc, httpx.WriteError | httpx.WriteTimeout):
        return CallFailure("connect_error", f"could not send the request ({text})", sent=False)
    if isinstance(exc, httpx.RemoteProtocolError):
        return CallFailure("connect_error", f"{CLOSED_AFTER_SEND} ({text})")
    if isinstance(exc, httpx.TimeoutException):
        return CallFailure("timeout", f"the upstream did not answer in time ({text})")
    if isinstance(exc, httpx.NetworkError):
        return CallFailure("connect_error", f"{RESET_AFTER_SEND} ({text})")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return CallFailure("connect_error", f"cannot call the upstream ({text})", sent=False)
    if isinstance(exc, httpx.HTTPError):
        return CallFailure("connect_error", f"cannot call the upstream ({text})")
    logger.warning("unexpected error calling an upstream", exc_info=exc)
    return CallFailure("bad_response", f"unexpected upstream failure ({text})")


def _aiohttp_failure(cause: aiohttp.ClientError) -> CallFailure:
    text = _text(cause)
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return CallFailure("connect_error", f"could not connect in time ({text})", sent=False)
    if isinstance(cause, aiohttp.ClientConnectorError):  # refused, DNS, TLS, proxy
        return CallFailure("connect_error", f"cannot connect to the upstream ({text})", sent=False)
    if isinstance(cause, aiohttp.ClientConnectionResetError):
        # raised when writing the request to a connection already closing (a stale keep-alive
        # connection): nothing of the request went out
        return CallFailure(
            "connect_error", f"the connection closed before the request was sent ({text})", False
        )
    if isinstance(cause, aiohttp.ServerTimeoutError):
        return CallFailure("timeout", f"the upstream did not answer in time ({text})")
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return CallFailure("connect_error", f"{CLOSED_AFTER_SEND} ({text})")
    if isinstance(cause, aiohttp.ClientOSError):
        return CallFailure("connect_error", f"{RESET_AFTER_SEND} ({text})")
    if isinstance(cause, aiohttp.ClientPayloadError):
        return CallFailure("connect_error", f"the upstream reply broke off ({text})")
    return CallFailure("connect_error", f"cannot call the upstream ({text})")


def body_read_failure(exc: Exception) -> CallFailure:
    """A 2xx whose body could not be read to its end."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return CallFailure("timeout", f"the upstream stalled while sending its reply ({exc!r})")
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ServerTimeoutError):
        return CallFailure("timeout", f"the upstream stalled while sending its reply ({cause!r})")
    what = type(cause if isinstance(cause, aiohttp.ClientError) else exc).__name__
    return CallFailure("connect_error", f"the upstream reply broke off ({what})")


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), in seconds."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            ms = float(value)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms >= 0:
            return ms / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def error_fields(body: Any) -> tuple[str | None, str | None]:
    """(message, type) of an OpenAI-style (or vLLM/FastAPI-style) error body."""
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if isinstance(error, dict):
        message, kind = error.get("message"), error.get("type")
    elif isinstance(error, str):
        message, kind = error, body.get("type")
    else:
        message, kind = body.get("message") or body.get("detail"), body.get("type")
    return (
        message if isinstance(message, str) and message else None,
        kind if isinstance(kind, str) and kind else None,
    )


def http_failure(status: int, raw: bytes, headers: Mapping[str, str]) -> CallFailure:
    """A non-2xx answer (the upstream did receive the request)."""
    body: Any = None
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    message, kind = error_fields(body)
    if message is None:
        snippet = one_line(raw[:200].decode("utf-8", "replace")) if raw else ""
        message = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    return CallFailure(
        status="http_error",
        message=message,
        http_status=status,
        body=body,
        error_type=kind,
        retry_after_s=retry_after_s(headers),
    )


def parse_json_object(raw: bytes) -> dict[str, Any] | CallFailure:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        snippet = one_line(raw[:80].decode("utf-8", "replace"))
        return CallFailure("bad_response", f"the upstream sent a non-JSON body: {snippet!r}")
    if not isinstance(payload, dict):
        return CallFailure("bad_response", "the upstream body is not a JSON object")
    return payload


def completion_text(payload: dict[str, Any]) -> tuple[str, str | None, CallFailure | None]:
    """(text, finish_reason, problem) of a chat completion body."""
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        message, _ = error_fields(payload)
        reason = f"an error in a 2xx body: {message}" if message else "no choices in the reply"
        return "", None, CallFailure("bad_response", reason)
    choice = choices[0]
    message_obj = choice.get("message")
    content = message_obj.get("content") if isinstance(message_obj, dict) else None
    if not isinstance(content, str):
        return "", None, CallFailure("bad_response", "choices[0].message.content is missing")
    finish = choice.get("finish_reason")
    return content, finish if isinstance(finish, str) else None, None
