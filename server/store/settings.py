"""The shared store's settings: Redis when ``url`` is set, else in memory (one process)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.store.redis_connect import parse_redis_url

PositiveFloat = Annotated[float, Field(gt=0)]


class RedisSettings(BaseModel):
    """``ROUTER_R1_REDIS_*``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    url: str | None = None
    """Unset: the in-memory store (one process, nothing shared). ``redis://host:6379/0`` (one
    Redis), ``redis+cluster://h1:7000,h2:7001`` (a Redis Cluster) or
    ``redis+sentinel://s1:26379,s2:26379/mymaster/0`` (a Sentinel-managed primary); ``rediss``
    for TLS. All forms: server/store/redis_connect.py."""
    prefix: str = "router-r1:"
    """Prefix of every Redis key (several gateways can share one Redis with different prefixes)."""
    max_connections: Annotated[int, Field(gt=0)] = 64
    """Redis connections of one process."""
    timeout_s: PositiveFloat = 0.25
    """Bounds every Redis operation: connect, read, and waiting for a pooled connection."""
    retry_interval_s: PositiveFloat = 1.0
    """After a Redis failure, Redis is not tried again for this long (no request waits on it)."""

    @field_validator("url")
    @classmethod
    def _known_redis_url(cls, value: str | None) -> str | None:
        """A URL naming no Redis fails at startup, with the accepted forms."""
        if value:
            parse_redis_url(value)
        return value
