"""The swappable HTTP transport seam.

Default: one ``httpx.AsyncClient`` over ``httpx_aiohttp.AiohttpTransport``, i.e. aiohttp's
connection pool and HTTP parser under the httpx API (measured on the dev box: about 3x less CPU
per request than httpx's own pool). Tests and special deployments pass any
``httpx.AsyncBaseTransport`` instead (``httpx.MockTransport``, ``httpx.ASGITransport``, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from server.upstream.settings import UpstreamSettings


def precise_error(exc: httpx.TransportError) -> httpx.TransportError:
    """``exc`` as httpx's own transport would have raised it.

    httpx_aiohttp maps every non-timeout ``aiohttp.ClientConnectionError`` (a refused
    connection, a dropped one) to ``httpx.ConnectTimeout``; callers that tell a slow peer from
    an absent one (the policy engine: 504 vs 503) need ``ConnectError`` /
    ``RemoteProtocolError`` / ``ReadError`` as httpcore raises them.
    """
    cause = exc.__cause__
    if not isinstance(exc, httpx.ConnectTimeout) or cause is None:
        return exc
    if isinstance(cause, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return exc
    if isinstance(cause, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc))
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(str(exc))
    return httpx.ReadError(str(exc))


class _PreciseStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.ConnectTimeout as exc:
            raise precise_error(exc) from exc.__cause__

    async def aclose(self) -> None:
        await self._inner.aclose()


class PreciseAiohttpTransport(AiohttpTransport):
    """:class:`AiohttpTransport` raising connection failures as httpx's own transport does
    (see :func:`precise_error`)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response: httpx.Response = await super().handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            raise precise_error(exc) from exc.__cause__
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _PreciseStream(response.stream)
        return response


def build_aiohttp_transport(
    settings: UpstreamSettings, *, precise_errors: bool = False
) -> httpx.AsyncBaseTransport:
    """An httpx transport backed by one aiohttp session with a bounded connector.

    The aiohttp session is created lazily, on the first request, inside the running event loop
    (aiohttp requires one); the transport's ``aclose`` closes it. ``precise_errors``: a
    :class:`PreciseAiohttpTransport` (the upstream pool classifies httpx_aiohttp's own mapping).
    """
    limits = httpx.Limits(
        max_connections=settings.max_connections_total,
        max_keepalive_connections=settings.max_connections_total,
        keepalive_expiry=settings.keepalive_expiry_s,
    )
    kind = PreciseAiohttpTransport if precise_errors else AiohttpTransport
    transport: AiohttpTransport = kind(limits=limits, trust_env=False)
    ssl_context = transport.ssl_context

    def make_session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=settings.max_connections_total,
            limit_per_host=0,
            keepalive_timeout=settings.keepalive_expiry_s,
            ssl=ssl_context,
            ttl_dns_cache=300,
        )
        # Per-request timeouts come from httpx (connect/read); no session-wide total.
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=False,
            auto_decompress=False,
        )

    transport.client = make_session
    return transport


def build_client(
    settings: UpstreamSettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The pool's single client: ``transport`` if given, else the aiohttp-backed default."""
    return httpx.AsyncClient(
        transport=transport if transport is not None else build_aiohttp_transport(settings),
        follow_redirects=False,
        trust_env=False,
    )


def uses_aiohttp(client: httpx.AsyncClient) -> bool:
    """Whether ``client`` sends through the aiohttp transport (for readiness/diagnostics)."""
    return isinstance(client._transport, AiohttpTransport)
