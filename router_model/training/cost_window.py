"""The cost-normalisation window, shared by every reward worker of a training run.

The reference computed rewards in ONE driver process, batch by batch, so its rolling window
(``CostNormalizer``: the last 1000 sqrt raw costs, scored between their 5th and 95th
percentiles) was effectively global. veRL 0.9.1 scores trajectories in several reward-loop
workers (``reward.num_workers``, default 8) as they finish; a per-process window would give
each worker its own, smaller and diverging history.

Choice: :class:`RedisCostWindow` keeps the window in one Redis list. Each score is one
atomic server-side step (push the value, trim to the window, read the window back), so every
worker sees the same history and the scale is the reference's. The one difference: values
enter in completion order across workers, not in the batch order of one process, so which
trajectories share a window at the batch boundary is not reproducible run to run (the
percentiles of 1000 values barely move). Without a Redis URL, :class:`LocalCostWindow` is the
reference's in-process window (right for one reward process: TRL, or ``reward.num_workers=1``).
"""

from __future__ import annotations

from typing import Any, Protocol

from router_model.rewards.cost import (
    DEFAULT_WINDOW,
    CostNormalizer,
    score_in_window,
    sqrt_raw_cost,
)

DEFAULT_KEY = "router-r1:cost-window"

# KEYS[1] = list; ARGV[1] = value, ARGV[2] = window size. Push, trim, return the window.
_PUSH_AND_READ = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
return redis.call('LRANGE', KEYS[1], 0, -1)
"""


class CostWindow(Protocol):
    def score(self, raw: float) -> float:
        """Push ``raw`` (a raw cost) and return its cost reward in [0, 1] (1 = cheapest)."""
        ...


class LocalCostWindow:
    """The reference's process-local window."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self._normalizer = CostNormalizer(window)

    def score(self, raw: float) -> float:
        return self._normalizer.score(raw)


class RedisCostWindow:
    """One window for all processes, in the Redis list ``key``."""

    def __init__(
        self,
        url: str,
        *,
        key: str = DEFAULT_KEY,
        window: int = DEFAULT_WINDOW,
        timeout_s: float = 5.0,
    ) -> None:
        import redis

        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._script: Any = self._client.register_script(_PUSH_AND_READ)
        self._key = key
        self._window = window

    def score(self, raw: float) -> float:
        value = sqrt_raw_cost(raw)
        stored = self._script(keys=[self._key], args=[repr(value), self._window])
        window = [float(v) for v in stored]
        return score_in_window(value, window)

    def reset(self) -> None:
        """Forget the history (a new run)."""
        self._client.delete(self._key)

    def close(self) -> None:
        self._client.close()


def cost_window(
    url: str | None, *, key: str = DEFAULT_KEY, window: int = DEFAULT_WINDOW
) -> CostWindow:
    """:class:`RedisCostWindow` for a ``redis://`` URL, else :class:`LocalCostWindow`."""
    if url:
        return RedisCostWindow(url, key=key, window=window)
    return LocalCostWindow(window)
