"""Sub-query coalescing (single-flight): identical deterministic sub-queries in flight at the
same time share one upstream call, within this process.

"Identical" is what the sub-query cache keys on (:func:`server.upstream.cache.cache_key`: the
model and its deployments, the exact prompt, every sampling parameter); only deterministic
models (temperature 0 and a seed) are coalesced, as only they are cached: two calls of a
sampling model are two draws. The first caller to receive the reply pays for it (its reply as
the upstream gave it); every other one gets it with ``shared=True``, cost $0 and no attempts of
its own, and its trace step says so. The shared call runs in its own task: a caller that leaves
(cancelled) does not cancel it for the others; when every caller has left, it is cancelled.
"""

from __future__ import annotations

import asyncio
import dataclasses

from router_model.episode.route import RouteCaller, UpstreamReply
from router_model.registry import ModelSpec
from server.upstream.cache import cache_key, is_deterministic


@dataclasses.dataclass(eq=False)
class _Flight:
    task: asyncio.Task[UpstreamReply]
    waiters: int = 0
    paid: bool = False


class CoalescingRouteCaller:
    """Wraps ``inner`` (the upstream pool): see the module docstring."""

    def __init__(self, inner: RouteCaller) -> None:
        self.inner = inner
        self._flights: dict[str, _Flight] = {}

    @property
    def in_flight(self) -> int:
        """Distinct shared calls in flight now."""
        return len(self._flights)

    async def route_call(self, model: ModelSpec, prompt: str, *, max_tokens: int) -> UpstreamReply:
        if not is_deterministic(model):
            return await self.inner.route_call(model, prompt, max_tokens=max_tokens)
        key = cache_key(model, prompt, max_tokens)
        flight = self._flights.get(key)
        if flight is None:
            call = self.inner.route_call(model, prompt, max_tokens=max_tokens)
            flight = _Flight(asyncio.get_running_loop().create_task(call))
            self._flights[key] = flight
            flight.task.add_done_callback(lambda _: self._landed(key, flight))
        flight.waiters += 1
        try:
            reply = await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                self._landed(key, flight)  # a later caller starts a call of its own
                flight.task.cancel()
            raise
        flight.waiters -= 1
        if not flight.paid:
            flight.paid = True
            return reply
        return dataclasses.replace(reply, shared=True, cost_usd=0.0, attempts=0)

    def _landed(self, key: str, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
