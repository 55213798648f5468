"""Settings of the operations layer: shared state, API keys and limits, cache, traces, reload.

Mixed into :class:`server.settings.Settings`, so every field is a ``ROUTER_R1_*`` variable
(``ROUTER_R1_REDIS_URL``, ``ROUTER_R1_API_KEYS_FILE``, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

PositiveFloat = Annotated[float, Field(gt=0)]


class OperationsSettings(BaseSettings):
    """Shared state (in-memory, or Redis when ``redis_url`` is set), keys, cache, traces."""

    redis_url: str | None = None
    """``redis://host:6379/0`` (one Redis), ``redis+cluster://h1:7000,h2:7001`` (a Redis
    Cluster) or ``redis+sentinel://s1:26379,s2:26379/mymaster/0`` (a Sentinel-managed primary);
    ``rediss`` for TLS. All forms: server/store/redis_connect.py."""
    redis_prefix: str = "router-r1:"
    redis_max_connections: Annotated[int, Field(gt=0)] = 64
    redis_timeout_s: PositiveFloat = 0.25
    """Bounds every Redis operation: connect, read, and waiting for a pooled connection."""
    redis_retry_interval_s: PositiveFloat = 1.0
    """After a Redis failure, Redis is not tried again for this long (no request waits on it)."""

    api_keys_file: Path | None = None
    """YAML or JSON key file (see server/auth/keys.py); no keys at all = open mode."""
    api_keys: str | None = None
    """The same entries as a JSON list (``ROUTER_R1_API_KEYS``), added to the file's."""
    api_keys_reload_interval_s: Annotated[float, Field(ge=0)] = 1.0
    """How often the key file is polled for edits (keys added, revoked, limits changed); 0
    turns that off."""
    limits_fail_open: bool = True
    """When the shared store is unreachable: admit requests without limits (True), or refuse
    them with 503 (False). Spend that cannot be recorded is logged and counted either way."""

    cache_enabled: bool = True
    cache_ttl_s: PositiveFloat = 3600.0
    cache_max_entries: Annotated[int, Field(gt=0)] = 10_000
    """In-memory store only; with Redis the bound is the TTL and Redis' own maxmemory policy."""
    cache_max_entry_bytes: Annotated[int, Field(gt=0)] = 64 * 1024

    trace_ttl_s: PositiveFloat = 3600.0
    trace_max_entries: Annotated[int, Field(gt=0)] = 10_000
    """The traces kept in memory; with Redis, the entries of each trace listing index (the
    traces themselves are bounded by the TTL)."""

    registry_reload_interval_s: Annotated[float, Field(ge=0)] = 1.0
    """How often the registry file is polled for edits; 0 turns hot reload off."""

    metrics_enabled: bool = True

    @field_validator("redis_url")
    @classmethod
    def _known_redis_url(cls, value: str | None) -> str | None:
        """A URL naming no Redis fails at startup, with the accepted forms."""
        # imported here: server.store builds its store from these settings
        from server.store.redis_connect import parse_redis_url

        if value:
            parse_redis_url(value)
        return value
