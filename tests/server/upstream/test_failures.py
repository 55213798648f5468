"""Failure classification (from the aiohttp cause httpx_aiohttp hides, or httpx's own error)
and the retry rules: only what the upstream cannot have processed is retried by default."""

from __future__ import annotations

import errno

import aiohttp
import httpx
import pytest
from httpx_aiohttp.transport import map_aiohttp_exceptions

from server.upstream import UpstreamSettings
from server.upstream.failures import (
    CLOSED_AFTER_SEND,
    RESET_AFTER_SEND,
    CallFailure,
    http_failure,
    transport_failure,
)
from server.upstream.retry import retry_delay, retryable


def _through_httpx_aiohttp(error: Exception) -> Exception:
    """``error`` as the pool sees it: mapped by httpx_aiohttp (to ConnectTimeout, mostly)."""
    try:
        with map_aiohttp_exceptions():
            raise error
    except Exception as mapped:
        return mapped
    raise AssertionError("not raised")


def _connector_error() -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(errno.ECONNREFUSED, "refused"))


@pytest.mark.parametrize(
    ("aiohttp_error", "status", "sent", "needle"),
    [
        (_connector_error(), "connect_error", False, "cannot connect"),
        (aiohttp.ConnectionTimeoutError("connect timed out"), "connect_error", False, "in time"),
        (aiohttp.ClientConnectionResetError("closing transport"), "connect_error", False, "before"),
        (aiohttp.ServerDisconnectedError(), "connect_error", True, CLOSED_AFTER_SEND),
        (
            aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"),
            "connect_error",
            True,
            RESET_AFTER_SEND,
        ),
        (aiohttp.SocketTimeoutError("read timed out"), "timeout", True, "did not answer"),
        (aiohttp.ClientPayloadError("truncated"), "connect_error", True, "broke off"),
    ],
)
def test_aiohttp_causes_are_classified(
    aiohttp_error: Exception, status: str, sent: bool, needle: str
) -> None:
    mapped = _through_httpx_aiohttp(aiohttp_error)
    assert mapped.__cause__ is aiohttp_error
    failure = transport_failure(mapped)
    assert (failure.status, failure.sent) == (status, sent)
    assert needle in failure.message
    assert "ConnectTimeout" not in failure.message  # what httpx_aiohttp calls most of them


def test_a_reset_is_never_reported_as_a_connect_timeout() -> None:
    mapped = _through_httpx_aiohttp(aiohttp.ServerDisconnectedError())
    assert isinstance(mapped, httpx.ConnectTimeout)  # the mislabel this module undoes
    failure = transport_failure(mapped)
    assert failure.message.startswith(CLOSED_AFTER_SEND)


@pytest.mark.parametrize(
    ("error", "status", "sent"),
    [
        (httpx.ConnectError("refused"), "connect_error", False),
        (httpx.ConnectTimeout("slow"), "connect_error", False),
        (httpx.PoolTimeout("no slot"), "connect_error", False),
        (httpx.WriteError("broken pipe"), "connect_error", False),
        (httpx.RemoteProtocolError("Server disconnected"), "connect_error", True),
        (httpx.ReadError("reset"), "connect_error", True),
        (httpx.ReadTimeout("slow"), "timeout", True),
        (httpx.UnsupportedProtocol("ftp"), "connect_error", False),
    ],
)
def test_httpx_errors_are_classified(error: Exception, status: str, sent: bool) -> None:
    failure = transport_failure(error)
    assert (failure.status, failure.sent) == (status, sent)


def test_an_unexpected_exception_is_a_bad_response(caplog: pytest.LogCaptureFixture) -> None:
    failure = transport_failure(RuntimeError("bug"))
    assert failure.status == "bad_response"
    assert "unexpected" in caplog.text


def _http(status: int, retry_after: str | None = None) -> CallFailure:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return http_failure(status, b'{"error": {"message": "x"}}', httpx.Headers(headers))


@pytest.mark.parametrize(
    ("failure", "safe", "unsafe"),
    [
        (transport_failure(httpx.ConnectError("refused")), True, True),
        (transport_failure(httpx.ReadTimeout("slow")), False, True),
        (transport_failure(httpx.RemoteProtocolError("gone")), False, True),
        (_http(429), True, True),
        (_http(503, "1"), True, True),
        (_http(503), False, True),
        (_http(500), False, True),
        (_http(502), False, True),
        (_http(400), False, False),
        (_http(404), False, False),
        (CallFailure("bad_response", "garbage"), False, False),
        (CallFailure("unavailable", "open", sent=False), False, False),
    ],
)
def test_what_is_retried(failure: CallFailure, safe: bool, unsafe: bool) -> None:
    assert retryable(failure, unsafe=False) is safe
    assert retryable(failure, unsafe=True) is unsafe


def test_retry_delay_honours_retry_after_up_to_the_cap_and_max_retries() -> None:
    settings = UpstreamSettings(max_retries=2, backoff_base_s=0.1, backoff_cap_s=2.0)
    assert retry_delay(_http(429, "1.5"), 1, settings, 0.0) == 1.5
    assert retry_delay(_http(429, "30"), 1, settings, 0.0) is None  # longer than we may wait
    assert retry_delay(_http(429), 1, settings, 0.0) == pytest.approx(0.05)
    assert retry_delay(_http(429), 3, settings, 0.0) is None  # out of retries
    assert retry_delay(_http(500), 1, settings, 0.0) is None
    assert retry_delay(_http(500), 1, settings, 0.0, unsafe=True) == pytest.approx(0.05)


def test_breaker_counts_server_failures_not_request_errors() -> None:
    assert transport_failure(httpx.ConnectError("x")).counts_against_deployment
    assert transport_failure(httpx.ReadTimeout("x")).counts_against_deployment
    assert _http(500).counts_against_deployment
    assert not _http(429).counts_against_deployment
    assert not _http(400).counts_against_deployment
