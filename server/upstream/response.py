"""An opened upstream response (headers read, body not), whichever HTTP stack opened it.

The pool sends through its httpx transport (any ``httpx.AsyncBaseTransport``: tests inject
mocks and ASGI apps), except when it built the default aiohttp transport itself: then it calls
that transport's aiohttp session directly (:func:`aiohttp_post`), skipping the httpx request and
response objects wrapped around every call — about a fifth of the CPU of a passthrough
request. Both raise the same httpx exceptions: aiohttp's are mapped by httpx_aiohttp's own
``map_aiohttp_exceptions``, as its transport does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import aiohttp
import yarl
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions


class UpstreamResponse(Protocol):
    """What the pool reads of a response; ``httpx.Response`` is one."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Case-insensitive."""
        ...

    async def aread(self) -> bytes: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class AiohttpResponse:
    """:class:`UpstreamResponse` over an ``aiohttp.ClientResponse`` (body decoded by aiohttp)."""

    __slots__ = ("_response", "headers", "status_code")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status_code = response.status
        self.headers: Mapping[str, str] = response.headers

    async def aread(self) -> bytes:
        with map_aiohttp_exceptions():
            return await self._response.read()

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        with map_aiohttp_exceptions():
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        with map_aiohttp_exceptions():
            await self._response.__aexit__(None, None, None)


def aiohttp_session(transport: AiohttpTransport) -> aiohttp.ClientSession:
    """The transport's session, created on first use (inside the running loop) as the
    transport itself does."""
    client = transport.client
    if not isinstance(client, aiohttp.ClientSession):
        client = transport.client = transport.get_client()
    return client


async def aiohttp_post(
    session: aiohttp.ClientSession,
    url: yarl.URL,
    content: bytes,
    headers: Mapping[str, str],
    timeouts: Mapping[str, Any],
) -> AiohttpResponse:
    """POST as ``AiohttpTransport.handle_async_request`` would, except that aiohttp decodes
    the body (``gzip``/``deflate``: what the pool's ``accept-encoding`` offers)."""
    with map_aiohttp_exceptions():
        response = await session.request(
            "POST",
            url,
            data=content,
            headers=headers,
            allow_redirects=False,
            auto_decompress=True,
            compress=False,
            timeout=aiohttp.ClientTimeout(
                sock_connect=timeouts.get("connect"),
                sock_read=timeouts.get("read"),
                connect=timeouts.get("pool"),
            ),
        ).__aenter__()
    return AiohttpResponse(response)
