"""``text/event-stream`` responses that stop, and close their body, when the client leaves.

Starlette's ``StreamingResponse`` watches for the disconnect with an anyio task group and
cancel scope around every stream: a sixth of the proxy's CPU per relayed stream. Here the body
is sent from the request's own task, and one plain asyncio task waits for
``http.disconnect`` and cancels it. The body generator sees the cancellation at its current
``await`` (its ``finally`` closes upstream streams, episodes and the request's account), and
the response then ends quietly, as Starlette's does. A cancellation from elsewhere (server
shutdown) is not swallowed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from router_model.episode.aio import aclose

Finished = Callable[[BaseException | None], Awaitable[None]]


class EventStreamResponse(Response):
    """``finished`` is awaited once the stream has ended, with the error that ended it (or
    None), even when the body never started (a body generator's ``finally`` cannot be
    relied on for that: closing a generator that never ran skips it)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        headers: Mapping[str, str] | None = None,
        *,
        finished: Finished | None = None,
    ):
        self.body_iterator = chunks
        self._finished = finished
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        client_left = False

        async def cancel_when_client_leaves() -> None:
            nonlocal client_left
            while (await receive())["type"] != "http.disconnect":
                pass
            client_left = True
            task.cancel()

        watcher = asyncio.ensure_future(cancel_when_client_leaves())
        try:
            await self._send_body(send)
        except asyncio.CancelledError:
            # The watcher only runs while this task is suspended, i.e. inside _send_body, so
            # its cancel() always lands there: nothing after this point can be hit by it.
            if client_left and task.uncancel() == 0:
                return
            raise
        finally:
            watcher.cancel()

    async def _send_body(self, send: Send) -> None:
        chunks = self.body_iterator
        error: BaseException | None = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                # cancelled in send(), the body is suspended at a yield: close it now, not at GC
                await aclose(chunks)
            finally:
                if self._finished is not None:
                    await self._finished(error)
