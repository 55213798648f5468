"""aclose(): an async generator's ``finally`` runs at once; other iterators are left alone."""

from __future__ import annotations

from collections.abc import AsyncIterator

from router_model.episode.aio import aclose


async def test_closes_a_suspended_async_generator() -> None:
    closed: list[bool] = []

    async def chunks() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    iterator = chunks()
    assert await anext(iterator) == 1
    await aclose(iterator)
    assert closed == [True]


async def test_an_iterator_without_aclose_is_left_alone() -> None:
    class Countdown:
        def __init__(self) -> None:
            self.left = 1

        def __aiter__(self) -> Countdown:
            return self

        async def __anext__(self) -> int:
            if not self.left:
                raise StopAsyncIteration
            self.left -= 1
            return self.left

    iterator = Countdown()
    await aclose(iterator)
    assert [i async for i in iterator] == [0]
