"""Safe retries over real sockets, counted on the server side: a call whose request reached the
upstream is made once (no duplicate billing) unless the model opts in; one that could not be
made is retried (on another deployment when there is one)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator

import orjson
import pytest

from router_model.registry import RetryPolicy
from server.upstream import UpstreamConnectionError, UpstreamPool
from server.upstream.failures import CLOSED_AFTER_SEND
from tests.server.upstream.helpers import FAST, closed_port, completion, deployed_registry

REPLY = orjson.dumps(completion("Paris", {"prompt_tokens": 3, "completion_tokens": 1}))


class CountingServer:
    """A raw HTTP/1.1 server on 127.0.0.1 that counts every complete request it read, then
    does its next action: ``ok`` (a 200), ``close`` (hang up: FIN), ``reset`` (RST), ``500``."""

    def __init__(self, *actions: str) -> None:
        self.actions = list(actions)
        self.requests = 0
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> CountingServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.requests += 1
                action = self.actions[min(self.requests, len(self.actions)) - 1]
                if action == "close":
                    writer.close()
                    return
                if action == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                status, body = (b"200 OK", REPLY) if action == "ok" else (b"500 Oops", b"{}")
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                    b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()


@pytest.fixture
async def pools() -> AsyncIterator[list[UpstreamPool]]:
    opened: list[UpstreamPool] = []
    yield opened
    for pool in opened:
        await pool.aclose()


@pytest.mark.parametrize("action", ["close", "reset"])
async def test_a_hang_up_after_the_request_was_sent_is_not_retried(
    action: str, pools: list[UpstreamPool]
) -> None:
    async with CountingServer(action, "ok") as server:
        registry = deployed_registry(("up", server.base_url))
        pool = UpstreamPool(lambda: registry, FAST)
        pools.append(pool)
        reply = await pool.route_call(registry.models[0], "q", max_tokens=4)
    assert server.requests == 1  # reached the upstream exactly once
    assert (reply.status, reply.attempts, reply.deployment) == ("connect_error", 1, "up")
    assert reply.error is not None
    assert "after the request was sent" in reply.error
    assert "ConnectTimeout" not in reply.error
    if action == "close":
        assert CLOSED_AFTER_SEND in reply.error


async def test_the_passthrough_says_what_happened_too(pools: list[UpstreamPool]) -> None:
    async with CountingServer("close", "ok") as server:
        registry = deployed_registry(("up", server.base_url))
        pool = UpstreamPool(lambda: registry, FAST)
        pools.append(pool)
        with pytest.raises(UpstreamConnectionError) as caught:
            await pool.chat(registry.models[0], {"messages": [{"role": "user", "content": "q"}]})
    assert server.requests == 1
    assert caught.value.attempts == 1
    assert CLOSED_AFTER_SEND in caught.value.message


async def test_a_model_that_opts_in_retries_what_may_have_been_processed(
    pools: list[UpstreamPool],
) -> None:
    async with CountingServer("reset", "close", "ok") as server:
        registry = deployed_registry(("up", server.base_url), retry=RetryPolicy(unsafe=True))
        pool = UpstreamPool(lambda: registry, FAST)
        pools.append(pool)
        reply = await pool.route_call(registry.models[0], "q", max_tokens=4)
    assert server.requests == 3
    assert (reply.status, reply.attempts, reply.text) == ("ok", 3, "Paris")


async def test_a_500_reaches_the_upstream_once(pools: list[UpstreamPool]) -> None:
    async with CountingServer("500", "ok") as server:
        registry = deployed_registry(("up", server.base_url))
        pool = UpstreamPool(lambda: registry, FAST)
        pools.append(pool)
        reply = await pool.route_call(registry.models[0], "q", max_tokens=4)
    assert server.requests == 1
    assert (reply.status, reply.http_status) == ("http_error", 500)


async def test_a_refused_connection_is_retried_on_the_other_deployment(
    pools: list[UpstreamPool],
) -> None:
    async with CountingServer("ok") as server:
        down = f"http://127.0.0.1:{closed_port()}/v1"
        # weights make the dead deployment the first choice of an idle pool
        registry = deployed_registry(("down", down), ("up", server.base_url), weights=(1e6, 1e-6))
        pool = UpstreamPool(lambda: registry, FAST)
        pools.append(pool)
        reply = await pool.route_call(registry.models[0], "q", max_tokens=4)
    assert server.requests == 1
    assert (reply.status, reply.attempts, reply.deployment) == ("ok", 2, "up")
