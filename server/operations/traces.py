"""Recent requests' ``router`` traces in the shared store, readable by the key that made them
(or an admin key), with a summary of each for listings."""

from __future__ import annotations

import logging
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from server.store.base import SharedStore, StoredTrace, StoreUnavailable, TraceSummary

logger = logging.getLogger("router_r1.traces")


class TraceSettings(BaseModel):
    """``ROUTER_R1_TRACE_*``: how long recent requests' traces are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    ttl_s: Annotated[float, Field(gt=0)] = 3600.0
    """How long a request's trace can be read back (``GET /v1/router/traces``)."""
    max_entries: Annotated[int, Field(gt=0)] = 10_000
    """The traces kept in memory; with Redis, the entries of each trace listing index (the
    traces themselves are bounded by the TTL)."""


class TraceArchive:
    def __init__(self, store: SharedStore, ttl_s: float) -> None:
        self._store = store
        self.ttl_s = ttl_s

    async def put(self, summary: TraceSummary, trace: bytes) -> None:
        """Keep ``trace`` for ``ttl_s`` under its owner; never raises (a trace that cannot be
        kept is dropped)."""
        try:
            await self._store.put_trace(summary, trace, self.ttl_s)
        except StoreUnavailable:
            logger.debug("trace of %s not kept: store unavailable", summary.request_id)

    async def get(self, request_id: str, owner: str | None) -> StoredTrace | None:
        """``owner``'s trace of that request; None: an admin's lookup, whoever's it is (raises
        StoreUnavailable)."""
        return await self._store.get_trace(request_id, owner)

    async def summaries(
        self,
        owner: str | None,
        limit: int,
        *,
        profile: str | None = None,
        outcome: str | None = None,
    ) -> list[TraceSummary]:
        """Summaries, newest first: ``owner``'s, or everyone's (None, for an admin); raises
        StoreUnavailable."""
        return await self._store.list_traces(owner, limit, profile=profile, outcome=outcome)
