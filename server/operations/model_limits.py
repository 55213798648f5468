"""Per-model rate limits: a registry model's ``limits.requests_per_minute`` and
``limits.tokens_per_minute``, enforced across replicas through the shared store.

Before calling a model, :meth:`ModelRateLimits.acquire` counts the call and its estimated
tokens in the model's current minute, or refuses it (the ticket says until when); after the
call, :meth:`ModelRateLimits.finished` corrects the estimate with the real tokens, in the
minute the call was counted in. A passthrough refused here answers 429 with ``Retry-After``;
a routed call is not executed (step status ``rate_limited``). A model without limits costs
nothing; when the store is unavailable, ``fail_open`` decides (allow uncounted, or refuse for
a second).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from router_model.registry import ModelSpec
from server.store.base import ModelCapacity, SharedStore, StoreUnavailable
from server.store.windows import Window, minute_window

logger = logging.getLogger("router_r1.model_limits")


@dataclass(frozen=True)
class ModelTicket:
    """The answer for one call; ``counted`` when the store counted it (so it is corrected)."""

    capacity: ModelCapacity
    model: str
    minute: Window | None = None
    tokens_estimate: int = 0

    @property
    def allowed(self) -> bool:
        return self.capacity.allowed

    @property
    def retry_after_s(self) -> int:
        return self.capacity.retry_after_s

    @property
    def counted(self) -> bool:
        return self.minute is not None


_UNCOUNTED = ModelCapacity(True)


class ModelRateLimits:
    def __init__(
        self,
        store: SharedStore,
        *,
        fail_open: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._fail_open = fail_open
        self._clock = clock

    async def acquire(self, model: ModelSpec, tokens_estimate: int) -> ModelTicket:
        """May a call to ``model`` of about ``tokens_estimate`` tokens (prompt + max output)
        go ahead now? Never raises."""
        limits = model.limits
        if limits.requests_per_minute is None and limits.tokens_per_minute is None:
            return ModelTicket(_UNCOUNTED, model.name)
        minute = minute_window(self._clock())
        try:
            capacity = await self._store.acquire_model_capacity(
                model.name,
                minute,
                requests_per_minute=limits.requests_per_minute,
                tokens_per_minute=limits.tokens_per_minute,
                tokens_estimate=tokens_estimate,
            )
        except StoreUnavailable:
            logger.debug("rate limits of %s not checked: store unavailable", model.name)
            if self._fail_open:
                return ModelTicket(_UNCOUNTED, model.name)
            return ModelTicket(ModelCapacity(False, None, 1), model.name)
        if not capacity.allowed:
            return ModelTicket(capacity, model.name)
        return ModelTicket(capacity, model.name, minute, tokens_estimate)

    async def finished(self, ticket: ModelTicket, tokens: int) -> None:
        """The call of ``ticket`` used ``tokens`` in all; never raises."""
        delta = tokens - ticket.tokens_estimate
        if ticket.minute is None or delta == 0:
            return
        try:
            await self._store.record_model_tokens(ticket.model, ticket.minute, delta)
        except StoreUnavailable:
            logger.debug("tokens of %s not corrected: store unavailable", ticket.model)
