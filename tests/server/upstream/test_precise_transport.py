"""``build_aiohttp_transport(precise_errors=True)``: aiohttp under httpx, with connection
failures raised as httpx's own transport raises them (the policy engine's client)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from server.upstream import build_aiohttp_transport
from tests.server.upstream.helpers import FAST, closed_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def _serve(handler: Handler) -> AsyncIterator[str]:
    """A raw TCP server running ``handler`` per connection; every connection is closed at
    the end (a handler still waiting is cancelled)."""
    tasks: list[asyncio.Task[None]] = []
    writers: list[asyncio.StreamWriter] = []

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        await handler(reader, writer)

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/x"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def precise() -> AsyncIterator[httpx.AsyncClient]:
    transport = build_aiohttp_transport(FAST, precise_errors=True)
    async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(2.0)) as client:
        yield client


async def test_refused_connection_is_a_connect_error(precise: httpx.AsyncClient) -> None:
    url = f"http://127.0.0.1:{closed_port()}/health"
    with pytest.raises(httpx.ConnectError):
        await precise.get(url)
    # the pool's transport keeps httpx_aiohttp's own mapping, which the pool classifies
    async with httpx.AsyncClient(transport=build_aiohttp_transport(FAST)) as plain:
        with pytest.raises(httpx.ConnectTimeout):
            await plain.get(url)


async def test_connection_dropped_before_a_reply(precise: httpx.AsyncClient) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async with _serve(drop) as url:
        with pytest.raises(httpx.RemoteProtocolError) as info:
            await precise.get(url)
    assert not isinstance(info.value, httpx.TimeoutException)


async def test_body_cut_short_is_a_read_error(precise: httpx.AsyncClient) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten..")
        await writer.drain()
        writer.close()

    async with _serve(cut) as url, precise.stream("GET", url) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.TransportError) as info:
            await response.aread()
    assert not isinstance(info.value, httpx.TimeoutException)


async def test_a_silent_peer_is_still_a_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(5)

    transport = build_aiohttp_transport(FAST, precise_errors=True)
    async with _serve(silent) as url, httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url, timeout=httpx.Timeout(0.2))
