"""ASGI plumbing for misbehaving fakes: reading a request, sending a response piece by piece,
noticing the client leave, and resetting the connection (RST) when served by uvicorn."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Mapping
from typing import Any

from starlette.types import Message, Receive, Send


def reset_connection(transport: asyncio.Transport) -> None:
    """Reset (RST) the connection: linger 0, then close at once."""
    sock = transport.get_extra_info("socket")
    if sock is not None:  # linger 0: close() sends RST, not FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def socket_transport_of(send: Send) -> asyncio.Transport | None:
    """The connection's transport when served by uvicorn (its ``send`` is a bound method of
    the request cycle, which holds it); None in-process."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def left_within(client_left: asyncio.Future[None], seconds: float) -> bool:
    """Wait ``seconds``; True as soon as the client has left."""
    done, _ = await asyncio.wait({client_left}, timeout=seconds)
    return bool(done)


async def until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def send_start(
    send: Send, status: int, content_type: str, headers: Mapping[str, str] | None = None
) -> None:
    raw = [(b"content-type", content_type.encode())]
    raw += [(k.lower().encode(), v.encode("utf-8")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def send_body(send: Send, data: bytes, more: bool) -> None:
    message: Message = {"type": "http.response.body", "body": data, "more_body": more}
    await send(message)


async def send_json(
    send: Send, status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None
) -> None:
    await send_start(send, status, "application/json", headers)
    await send_body(send, json.dumps(payload).encode(), more=False)


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
