"""Fixtures of the upstream tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.server.upstream.helpers import StubServer


@pytest.fixture
async def stub() -> AsyncIterator[StubServer]:
    server = StubServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
