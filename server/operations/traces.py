"""Recent requests' ``router`` traces in the shared store, readable by the key that made them."""

from __future__ import annotations

import logging
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from server.store.base import SharedStore, StoredTrace, StoreUnavailable

logger = logging.getLogger("router_r1.traces")


class TraceSettings(BaseModel):
    """``ROUTER_R1_TRACE_*``: how long recent requests' traces are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl_s: Annotated[float, Field(gt=0)] = 3600.0
    max_entries: Annotated[int, Field(gt=0)] = 10_000
    """In-memory store only (Redis: TTL)."""


class TraceArchive:
    def __init__(self, store: SharedStore, ttl_s: float) -> None:
        self._store = store
        self.ttl_s = ttl_s

    async def put(self, request_id: str, owner: str, trace: bytes) -> None:
        """Keep ``trace`` for ``ttl_s``; never raises (a trace that cannot be kept is dropped)."""
        try:
            await self._store.put_trace(request_id, owner, trace, self.ttl_s)
        except StoreUnavailable:
            logger.debug("trace of %s not kept: store unavailable", request_id)

    async def get(self, request_id: str) -> StoredTrace | None:
        """The stored trace (raises StoreUnavailable)."""
        return await self._store.get_trace(request_id)
