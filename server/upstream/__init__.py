"""Calling upstream OpenAI-compatible endpoints: the Router-R1 sub-query and the passthrough."""

from router_model.episode.route import RouteCaller, UpstreamReply, UpstreamStatus
from server.upstream.errors import (
    UpstreamBadResponseError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeoutError,
)
from server.upstream.pool import UpstreamPool
from server.upstream.result import UpstreamResult, Usage
from server.upstream.settings import UpstreamSettings
from server.upstream.sse import SSESplitter, event_data, is_done, usage_event
from server.upstream.stream import UpstreamStream
from server.upstream.transport import build_aiohttp_transport, build_client

__all__ = [
    "RouteCaller",
    "SSESplitter",
    "UpstreamBadResponseError",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamHTTPError",
    "UpstreamPool",
    "UpstreamReply",
    "UpstreamResult",
    "UpstreamSettings",
    "UpstreamStatus",
    "UpstreamStream",
    "UpstreamTimeoutError",
    "Usage",
    "build_aiohttp_transport",
    "build_client",
    "event_data",
    "is_done",
    "usage_event",
]
