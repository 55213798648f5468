"""Traces on Redis: each under its owner, with its summary and the listing indexes.

One non-transactional pipeline stores a trace (``trace:{owner}:<id>``), its summary
(``trsum:{owner}:<id>``), the owner's index and everyone's (sorted sets by ``created``,
trimmed to ``max_entries`` and to the TTL), and the owners of the request id (for an admin's
lookup): see :mod:`server.store.layout`. The writes are not atomic together: a listing skips
index entries whose summary is gone, an admin lookup skips owners whose trace is gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol, TypeVar

from server.store.base import StoredTrace, TraceSummary
from server.store.layout import (
    GLOBAL_TRACE_INDEX,
    index_member,
    owner_trace_index,
    request_owners_key,
    split_index_member,
    summary_key,
    trace_key,
)
from server.store.redis_connect import RedisConnection, as_bytes, as_text

T = TypeVar("T")

_FILTERED_PAGE = 200  # index entries read per round trip of a filtered listing
_MAX_PAGE = 1000


class BoundedRun(Protocol):
    """The store's way to run one call: bounded, fail-fast, errors reported."""

    def __call__(self, operation: str, call: Callable[[], Awaitable[T]], /) -> Awaitable[T]: ...


class RedisTraces:
    """The trace operations of :class:`~server.store.redis_store.RedisStore`."""

    def __init__(
        self,
        connection: RedisConnection,
        key: Callable[[str], str],
        run: BoundedRun,
        max_entries: int,
    ) -> None:
        self._connection = connection
        self._redis = connection.client
        self._key = key
        self._run = run
        self._max_entries = max_entries

    async def put(self, summary: TraceSummary, trace: bytes, ttl_s: float) -> None:
        owner, request_id = summary.key_id, summary.request_id
        ttl_ms = max(1, int(ttl_s * 1000))
        created_ms = int(summary.created * 1000)
        expired = f"({created_ms - ttl_ms}"  # entries created before this are gone
        indexes = (
            (self._key(owner_trace_index(owner)), request_id),
            (self._key(GLOBAL_TRACE_INDEX), index_member(owner, request_id)),
        )
        owners_key = self._key(request_owners_key(request_id))

        async def call() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._key(trace_key(owner, request_id)), trace, px=ttl_ms)
                pipe.set(
                    self._key(summary_key(owner, request_id)),
                    summary.model_dump_json(),
                    px=ttl_ms,
                )
                for index, member in indexes:
                    pipe.zadd(index, {member: created_ms})
                    pipe.zremrangebyscore(index, "-inf", expired)
                    pipe.zremrangebyrank(index, 0, -self._max_entries - 1)
                    pipe.pexpire(index, ttl_ms)
                pipe.zadd(owners_key, {owner: created_ms})
                pipe.zremrangebyscore(owners_key, "-inf", expired)
                pipe.pexpire(owners_key, ttl_ms)
                await pipe.execute()

        await self._run("put_trace", call)

    async def get(self, request_id: str, owner: str | None) -> StoredTrace | None:
        async def call() -> StoredTrace | None:
            owners = (
                [owner]
                if owner is not None
                else [
                    as_text(o)
                    for o in await self._redis.zrevrange(
                        self._key(request_owners_key(request_id)), 0, -1
                    )
                ]
            )
            for candidate in owners:  # an admin's: the newest first
                value = as_bytes(await self._redis.get(self._key(trace_key(candidate, request_id))))
                if value is not None:
                    return StoredTrace(owner=candidate, trace=value)
            return None

        return await self._run("get_trace", call)

    async def summaries(
        self, owner: str | None, limit: int, profile: str | None, outcome: str | None
    ) -> list[TraceSummary]:
        if limit <= 0:
            return []
        index = self._key(owner_trace_index(owner) if owner is not None else GLOBAL_TRACE_INDEX)
        found: list[TraceSummary] = []
        seen: set[tuple[str, str]] = set()
        # Each page is one bounded call, and the index holds at most trace_max_entries.
        # Unfiltered, the first ``limit`` entries are the answer (unless some just expired).
        size = min(_MAX_PAGE, limit if profile is None and outcome is None else _FILTERED_PAGE)
        for start in range(0, self._max_entries, size):
            read, page = await self._run(
                "list_traces", partial(self._page, index, owner, start, size)
            )
            for summary in page:
                if (summary.key_id, summary.request_id) in seen:
                    continue  # a page boundary moved under a concurrent write
                seen.add((summary.key_id, summary.request_id))
                if (profile is None or summary.profile == profile) and (
                    outcome is None or summary.outcome == outcome
                ):
                    found.append(summary)
                    if len(found) >= limit:
                        return found
            if read < size:
                break
        return found

    async def _page(
        self, index: str, owner: str | None, start: int, size: int
    ) -> tuple[int, list[TraceSummary]]:
        """(entries read, their summaries) of one page of ``index``, newest first; entries
        whose summary is gone are left out."""
        stop = start + size - 1
        members = [as_text(m) for m in await self._redis.zrevrange(index, start, stop)]
        pairs = [
            (owner, member) if owner is not None else split_index_member(member)
            for member in members
        ]
        values = await self._connection.mget(
            [self._key(summary_key(item_owner, request_id)) for item_owner, request_id in pairs]
        )
        summaries = [TraceSummary.model_validate_json(v) for v in values if v is not None]
        return len(members), summaries
