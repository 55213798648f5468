"""Asyncio helpers shared by the layers of the request path."""

from __future__ import annotations


async def aclose(iterator: object) -> None:
    """Close an async generator (anything with ``aclose()``) now, so its ``finally`` blocks run
    here rather than at garbage collection; other async iterators have nothing to close."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
