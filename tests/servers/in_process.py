"""The gateway app in-process: its lifespan run, and the official ``openai`` SDK pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import openai
from fastapi import FastAPI

BASE_URL = "http://gateway.test"


@asynccontextmanager
async def sdk_client(
    app: FastAPI, *, request_timeout_s: float | None = None
) -> AsyncIterator[tuple[openai.AsyncOpenAI, httpx2.AsyncClient]]:
    """Run ``app``'s lifespan; yield an SDK client and a raw HTTP client, both reaching it."""
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            options = {} if request_timeout_s is None else {"timeout": request_timeout_s}
            client = openai.AsyncOpenAI(
                base_url=f"{BASE_URL}/v1",
                api_key="test",
                http_client=http,
                max_retries=0,
                **options,  # type: ignore[arg-type]
            )
            yield client, http
