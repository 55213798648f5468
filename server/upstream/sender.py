"""One POST to an upstream's chat completions URL: headers, timeouts, and the send itself.

The measured fast path lives here. ``httpx.AsyncClient.send`` is bypassed: its per-request work
(URL merging, the cookie jar, auth and redirect flows) cost a third of the pool's CPU per call,
and a proxy wants none of it (a shared cookie jar would even leak one upstream session into
every caller's). With the default transport (built by the pool itself), its aiohttp session
is called directly (:func:`server.upstream.response.aiohttp_post`), skipping the httpx request
and response objects too. URLs are parsed once per endpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import yarl
from httpx_aiohttp import AiohttpTransport

from router_model.registry import Endpoint
from server.upstream.response import UpstreamResponse, aiohttp_post, aiohttp_session
from server.upstream.settings import UpstreamSettings

_JSON = "application/json"


def dumps(payload: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(payload)
    except (orjson.JSONEncodeError, TypeError):  # e.g. integers beyond 64 bits
        return json.dumps(payload, ensure_ascii=False).encode()


class Sender:
    """Sends through ``transport``; calls its aiohttp session directly when ``direct``."""

    def __init__(
        self,
        settings: UpstreamSettings,
        transport: httpx.AsyncBaseTransport,
        client_headers: dict[str, str],
        *,
        direct: bool,
        trace_headers: Callable[[], dict[str, str] | None] | None = None,
    ) -> None:
        """``trace_headers``: the W3C trace headers of the call being made (set only while
        tracing is on: otherwise nothing is looked up)."""
        self._settings = settings
        self._trace_headers = trace_headers
        self._transport = transport
        self._aiohttp = transport if direct and isinstance(transport, AiohttpTransport) else None
        self._client_headers = dict(client_headers)
        if self._aiohttp is not None:  # what aiohttp decodes (httpx may offer more: zstd)
            self._client_headers["accept-encoding"] = "gzip, deflate"
        self._urls: dict[str, tuple[httpx.URL, yarl.URL]] = {}

    @property
    def direct(self) -> bool:
        """Whether it calls the aiohttp session directly (the fast path)."""
        return self._aiohttp is not None

    def headers(self, endpoint: Endpoint, stream: bool) -> dict[str, str]:
        headers = {
            **self._client_headers,
            "content-type": _JSON,
            "accept": "text/event-stream" if stream else _JSON,
        }
        if stream:
            headers["accept-encoding"] = "identity"
        if endpoint.api_key_env:
            key = os.environ.get(endpoint.api_key_env)
            if key:
                headers["authorization"] = f"Bearer {key}"
        return headers

    def timeouts(self, endpoint: Endpoint, stream: bool) -> dict[str, Any]:
        settings = self._settings
        read = settings.stream_read_timeout(endpoint) if stream else settings.read_timeout(endpoint)
        return {"connect": settings.connect_timeout(endpoint), "read": read, "write": read}

    def _url(self, endpoint: Endpoint) -> tuple[httpx.URL, yarl.URL]:
        """The endpoint's chat completions URL, parsed once (for httpx, for aiohttp)."""
        urls = self._urls.get(endpoint.base_url)
        if urls is None:
            if len(self._urls) > 256:  # registries were reloaded with other endpoints
                self._urls.clear()
            url = f"{endpoint.base_url}/chat/completions"
            urls = self._urls[endpoint.base_url] = (httpx.URL(url), yarl.URL(url))
        return urls

    async def send(
        self,
        endpoint: Endpoint,
        content: bytes,
        headers: dict[str, str],
        timeouts: dict[str, Any],
    ) -> UpstreamResponse:
        """One POST, streamed (headers read, body not)."""
        httpx_url, aiohttp_url = self._url(endpoint)
        if self._trace_headers is not None:
            traced = self._trace_headers()
            if traced:
                headers = {**headers, **traced}
        if self._aiohttp is not None:
            session = aiohttp_session(self._aiohttp)
            return await aiohttp_post(session, aiohttp_url, content, headers, timeouts)
        request = httpx.Request(
            "POST",
            httpx_url,
            content=content,
            headers=headers,
            extensions={"timeout": {**timeouts, "pool": None}},
        )
        response = await self._transport.handle_async_request(request)
        response.request = request
        return response
