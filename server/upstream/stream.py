"""An opened passthrough stream: raw SSE events in, verbatim events out, usage accounted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

import httpx

from router_model.episode.aio import aclose
from router_model.registry import ModelSpec, Pricing
from router_model.usage import Usage
from server.upstream.errors import UpstreamConnectionError, UpstreamError, UpstreamTimeoutError
from server.upstream.response import UpstreamResponse
from server.upstream.result import forwarded_headers
from server.upstream.sse import SSESplitter, is_done, usage_event


class UpstreamStream:
    """A 2xx ``text/event-stream`` upstream response, opened by ``UpstreamPool.chat_stream``.

    Iterate it (once) for the SSE events, each a complete ``data: ...`` event with its blank-line
    terminator, byte for byte as the upstream sent it — except that the usage-only chunk the pool
    asked for on the client's behalf is dropped when the client did not ask for usage itself
    (``client_requested_usage``; use ``events(drop_injected_usage=False)`` to see everything).
    A failure after the first byte raises an :class:`UpstreamError` from the iteration (and is
    kept in ``error``). Always close it (``async with stream`` or ``await stream.aclose()``):
    it holds an upstream connection and one slot of the model's concurrency limit.

    After the iteration ends: ``usage`` (from the last event that carried a usage object; when
    the upstream sent none, an estimate — prompt ≈ request bytes / 4, completion ≈ number of
    data events — with ``usage_estimated`` set) and ``cost_usd``.
    """

    def __init__(
        self,
        *,
        model: ModelSpec,
        response: UpstreamResponse,
        release: Callable[[], None],
        client_requested_usage: bool,
        attempts: int,
        latency_s: float,
        prompt_bytes: int,
        deadline: float | None = None,
        timeout_s: float | None = None,
        idle_timeout_s: float = 0.0,
        pricing: Pricing | None = None,
        deployment: str | None = None,
        on_done: Callable[[Usage | None], Awaitable[None]] | None = None,
    ) -> None:
        """``deadline`` (event-loop time) ends the stream with a timeout error when it has
        passed at a chunk; ``timeout_s`` is the bound it stands for, ``idle_timeout_s`` the
        transport's read timeout between chunks (both for the messages). ``pricing``: the
        serving deployment's (default: the model's); ``on_done`` is told the usage once the
        stream is closed (the model's per-minute token count is corrected with it)."""
        self.model = model
        self.pricing = pricing or model.pricing
        self.deployment = deployment
        self._on_done = on_done
        self.status_code = response.status_code
        self.headers = forwarded_headers(response.headers)
        self.client_requested_usage = client_requested_usage
        self.attempts = attempts
        self.latency_s = latency_s  # until the response headers
        self.idle_timeout_s = idle_timeout_s
        self.usage: Usage | None = None
        self.usage_estimated = False
        self.done = False  # saw ``data: [DONE]``
        self.completed = False  # read to the end without an error
        self.error: UpstreamError | None = None
        self._response = response
        self._release = release
        self._prompt_bytes = prompt_bytes
        self._data_events = 0
        self._iterator: AsyncIterator[bytes] | None = None
        self._finished = False
        self._deadline = deadline
        self._timeout_s = timeout_s

    @property
    def injected_usage(self) -> bool:
        """Whether the pool added ``stream_options.include_usage`` the client did not ask for."""
        return not self.client_requested_usage

    @property
    def cost_usd(self) -> float:
        if self.usage is None:
            return 0.0
        return self.pricing.cost_of(self.usage)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.events()

    def events(self, *, drop_injected_usage: bool = True) -> AsyncIterator[bytes]:
        if self._iterator is not None:
            raise RuntimeError("an upstream stream can be iterated only once")
        self._iterator = self._events(drop_injected_usage and not self.client_requested_usage)
        return self._iterator

    async def _events(self, drop_usage_only: bool) -> AsyncIterator[bytes]:
        splitter = SSESplitter()
        deadline = self._deadline
        clock = asyncio.get_running_loop().time
        try:
            async for chunk in self._response.aiter_bytes():
                # a drip of small chunks must not outlive the call's bound (checked per chunk:
                # a stall is the read timeout's, a chunk at a time costs one clock read)
                if deadline is not None and clock() > deadline:
                    raise self._fail(
                        UpstreamTimeoutError(
                            f"{self.model.name}: the stream ran past its "
                            f"{self._timeout_s or 0:g} s bound"
                        )
                    )
                for event in splitter.feed(chunk):
                    if self._account(event) and drop_usage_only:
                        continue
                    yield event
            rest = splitter.flush()
            if rest is not None and not (self._account(rest) and drop_usage_only):
                yield rest
            self.completed = True
        except UpstreamError:
            raise
        except httpx.TimeoutException as exc:
            raise self._fail(
                UpstreamTimeoutError(
                    f"{self.model.name}: the upstream stream stalled: no data for "
                    f"{self.idle_timeout_s:g} s"
                )
            ) from exc
        except Exception as exc:  # httpx.HTTPError, or an aiohttp error the transport left as is
            raise self._fail(
                UpstreamConnectionError(
                    f"{self.model.name}: the upstream stream broke ({type(exc).__name__}: {exc})"
                )
            ) from exc
        finally:
            await self._finish()

    def _fail(self, error: UpstreamError) -> UpstreamError:
        self.error = error
        return error

    def _account(self, event: bytes) -> bool:
        """Record what the event tells; True for a usage-only chunk."""
        if is_done(event):
            self.done = True
            return False
        found = usage_event(event)
        if found is not None:
            self.usage = found.usage
            self.usage_estimated = False
            if found.usage_only:
                return True
        if event.startswith(b"data"):
            self._data_events += 1
        return False

    async def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self.usage is None:
            self.usage = Usage(self._prompt_bytes // 4, self._data_events)
            self.usage_estimated = True
        try:
            await self._response.aclose()
        finally:
            self._release()
            if self._on_done is not None:
                await self._on_done(self.usage)

    async def aclose(self) -> None:
        """Close the upstream response and free the concurrency slot; idempotent."""
        iterator = self._iterator
        if iterator is not None and not self._finished:
            with contextlib.suppress(RuntimeError):  # being iterated by another task
                await aclose(iterator)
        await self._finish()

    async def __aenter__(self) -> UpstreamStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
