"""EventStreamResponse: the body is sent in order, and closed whichever way the stream ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.types import Message

from server.api.chat_completions.event_stream import EventStreamResponse

SCOPE: dict[str, Any] = {"type": "http", "method": "POST", "path": "/v1/chat/completions"}


class Body:
    """An SSE body that can stall after some chunks and records whether it was closed."""

    def __init__(self, chunks: int, stall_after: int | None = None) -> None:
        self.chunks, self.stall_after = chunks, stall_after
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            for i in range(self.chunks):
                if i == self.stall_after:
                    await asyncio.sleep(30)
                yield f"data: {i}\n\n".encode()
        finally:
            self.closed = True


class Client:
    """The ASGI server side: ``leave_after_s`` is when ``http.disconnect`` arrives."""

    def __init__(self, leave_after_s: float = 30, stall_sends_after: int | None = None) -> None:
        self.leave_after_s = leave_after_s
        self.stall_sends_after = stall_sends_after
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        await asyncio.sleep(self.leave_after_s)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.stall_sends_after is not None and len(self.sent) >= self.stall_sends_after:
            await asyncio.sleep(30)  # a client that stopped reading: the server's buffer is full
        self.sent.append(message)

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


async def test_sends_every_chunk_then_ends() -> None:
    body, client = Body(3), Client()
    response = EventStreamResponse(aiter(body), headers={"x-router-models": "m"})
    await response(SCOPE, client.receive, client.send)
    start = client.sent[0]
    headers = dict(start["headers"])
    assert start["status"] == 200
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers[b"cache-control"] == b"no-cache"
    assert headers[b"x-router-models"] == b"m"
    assert client.bodies == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n", b""]
    assert client.sent[-1]["more_body"] is False
    assert body.closed


async def test_client_leaving_while_the_body_waits_ends_it_quietly() -> None:
    body, client = Body(3, stall_after=1), Client(leave_after_s=0.05)
    response = EventStreamResponse(aiter(body))
    await asyncio.wait_for(response(SCOPE, client.receive, client.send), timeout=5)
    assert client.bodies == [b"data: 0\n\n"]
    assert body.closed
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_client_leaving_while_a_send_is_blocked_closes_the_body_at_once() -> None:
    body, client = Body(3), Client(leave_after_s=0.05, stall_sends_after=2)
    response = EventStreamResponse(aiter(body))
    await asyncio.wait_for(response(SCOPE, client.receive, client.send), timeout=5)
    assert client.bodies == [b"data: 0\n\n"]
    assert body.closed  # not left suspended at a yield for the garbage collector


async def test_a_cancellation_from_elsewhere_is_not_swallowed() -> None:
    body, client = Body(3, stall_after=1), Client()
    task = asyncio.ensure_future(
        EventStreamResponse(aiter(body))(SCOPE, client.receive, client.send)
    )
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert body.closed


async def test_a_failing_body_raises_and_stops_watching_the_client() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"data: 0\n\n"
        raise RuntimeError("boom")

    client = Client()
    before = len(asyncio.all_tasks())
    with pytest.raises(RuntimeError, match="boom"):
        await EventStreamResponse(failing())(SCOPE, client.receive, client.send)
    await asyncio.sleep(0)  # let the cancelled watcher finish
    assert len(asyncio.all_tasks()) == before


class Finished:
    def __init__(self) -> None:
        self.errors: list[BaseException | None] = []

    async def __call__(self, error: BaseException | None) -> None:
        self.errors.append(error)


async def test_finished_is_told_how_the_stream_ended() -> None:
    done, left = Finished(), Finished()
    await EventStreamResponse(aiter(Body(2)), finished=done)(SCOPE, Client().receive, Client().send)
    client = Client(leave_after_s=0.05)
    await EventStreamResponse(aiter(Body(2, stall_after=1)), finished=left)(
        SCOPE, client.receive, client.send
    )
    assert done.errors == [None]
    assert len(left.errors) == 1
    assert isinstance(left.errors[0], asyncio.CancelledError)


async def test_finished_runs_even_if_the_body_never_started() -> None:
    """A body generator that never ran skips its ``finally`` when closed: ``finished`` is
    where a request's account and upstream stream get closed in that case."""
    body, finished = Body(2), Finished()
    client = Client(leave_after_s=0.05, stall_sends_after=0)
    await asyncio.wait_for(
        EventStreamResponse(aiter(body), finished=finished)(SCOPE, client.receive, client.send),
        timeout=5,
    )
    assert client.sent == []
    assert not body.closed  # never started, so its finally never ran...
    assert len(finished.errors) == 1  # ...but the response still reported its end
