"""The shared store's settings: Redis when ``url`` is set, else in memory (one process)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

PositiveFloat = Annotated[float, Field(gt=0)]


class RedisSettings(BaseModel):
    """``ROUTER_R1_REDIS_*``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    """A Redis URL; unset: the in-memory store (one process, nothing shared)."""
    prefix: str = "router-r1:"
    max_connections: Annotated[int, Field(gt=0)] = 64
    timeout_s: PositiveFloat = 0.25
    """Bounds every Redis operation: connect, read, and waiting for a pooled connection."""
    retry_interval_s: PositiveFloat = 1.0
    """After a Redis failure, Redis is not tried again for this long (no request waits on it)."""
