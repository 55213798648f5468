"""Stop the work of a request whose client left: one mechanism for every response kind.

Streams are watched by :class:`~server.api.chat_completions.event_stream.EventStreamResponse`;
plain responses (a non-streamed episode, a passthrough call) by :func:`cancel_on_disconnect`.
Both cancel the request's own task when ``http.disconnect`` arrives, so the work stops at its
current ``await`` (engine and upstream calls are abandoned, their ``finally`` blocks run) and
the request is counted as 499 ``client_closed_request``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

from server.errors import ClientDisconnected

T = TypeVar("T")


async def cancel_on_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """``await work`` in this task; :class:`ClientDisconnected` if the client leaves first.

    The watcher only runs while this task is suspended inside ``work``, so its ``cancel()``
    always lands there; a cancellation from elsewhere (shutdown) propagates unchanged.
    """
    task = asyncio.current_task()
    assert task is not None
    client_left = False

    async def watch() -> None:
        nonlocal client_left
        while (await receive())["type"] != "http.disconnect":
            pass
        client_left = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if client_left and task.uncancel() == 0:
            raise ClientDisconnected from None
        raise
    finally:
        watcher.cancel()
