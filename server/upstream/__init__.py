"""Calling upstream OpenAI-compatible endpoints: the Router-R1 sub-query and the passthrough."""

from router_model.episode.route import RouteCaller, UpstreamReply, UpstreamStatus
from router_model.usage import Usage
from server.upstream.errors import (
    UpstreamBadResponseError,
    UpstreamConnectionError,
    UpstreamContextTooLongError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from server.upstream.pool import UpstreamPool
from server.upstream.result import UpstreamResult
from server.upstream.settings import UpstreamSettings
from server.upstream.sse import SSESplitter, event_data, is_done, usage_event
from server.upstream.stream import UpstreamStream
from server.upstream.transport import build_aiohttp_transport, build_client

__all__ = [
    "RouteCaller",
    "SSESplitter",
    "UpstreamBadResponseError",
    "UpstreamConnectionError",
    "UpstreamContextTooLongError",
    "UpstreamError",
    "UpstreamHTTPError",
    "UpstreamPool",
    "UpstreamRateLimitedError",
    "UpstreamReply",
    "UpstreamResult",
    "UpstreamSettings",
    "UpstreamStatus",
    "UpstreamStream",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "Usage",
    "build_aiohttp_transport",
    "build_client",
    "event_data",
    "is_done",
    "usage_event",
]
