"""Cost: the reference raw cost and its rolling-window normalisation."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Iterable

DEFAULT_WINDOW = 1000
LOW_QUANTILE = 0.05
HIGH_QUANTILE = 0.95
FLAT_EPS = 1e-8
FLAT_SCORE = 0.5


def raw_cost(calls: Iterable[tuple[float, float]]) -> float:
    """Sum of completion_tokens * USD per 1M output tokens (no 1e6 division: units of 1e-6 USD).

    ``calls`` holds ``(completion_tokens, usd_per_1m_output_tokens)`` per upstream call.
    """
    return float(sum(tokens * price for tokens, price in calls))


def _lerp(a: float, b: float, t: float) -> float:
    # numpy's _lerp: interpolate from the nearer end for better rounding
    diff = b - a
    if t >= 0.5:
        return b - diff * (1.0 - t)
    return a + diff * t


def percentile_linear(values: Iterable[float], quantile: float) -> float:
    """``numpy.percentile(values, 100 * quantile)`` with the default linear method."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    last = len(ordered) - 1
    position = last * quantile
    if position >= last:
        return ordered[last]
    below = math.floor(position)
    return _lerp(ordered[below], ordered[below + 1], position - below)


def sqrt_raw_cost(raw: float) -> float:
    """The value a cost window holds for a raw cost: its square root."""
    if raw < 0 or math.isnan(raw):
        raise ValueError(f"raw cost must be a non-negative number, got {raw}")
    return math.sqrt(raw)


def score_in_window(
    value: float,
    window: Collection[float],
    low_quantile: float = LOW_QUANTILE,
    high_quantile: float = HIGH_QUANTILE,
) -> float:
    """The cost reward of ``value`` (a sqrt raw cost) given the window it was pushed into:
    scaled between the window's percentiles (itself alone below 2 values), 1 = cheapest."""
    if len(window) >= 2:
        low = percentile_linear(window, low_quantile)
        high = percentile_linear(window, high_quantile)
    else:
        low = high = value
    span = high - low
    if span < FLAT_EPS:
        return FLAT_SCORE
    return 1.0 - min(max((value - low) / span, 0.0), 1.0)


class CostNormalizer:
    """Rolling cost reward: 1 for the cheapest trajectories, 0 for the dearest.

    Each score pushes sqrt(raw cost) into a window of the last ``window`` values and
    scales it between the window's 5th and 95th percentiles (min/max below 2 values).
    """

    def __init__(
        self,
        window: int = DEFAULT_WINDOW,
        low_quantile: float = LOW_QUANTILE,
        high_quantile: float = HIGH_QUANTILE,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if not 0.0 <= low_quantile <= high_quantile <= 1.0:
            raise ValueError("need 0 <= low_quantile <= high_quantile <= 1")
        self._values: deque[float] = deque(maxlen=window)
        self._low_quantile = low_quantile
        self._high_quantile = high_quantile

    def __len__(self) -> int:
        return len(self._values)

    def score(self, raw: float) -> float:
        """Push ``raw`` (a raw cost, not yet square-rooted) and return its cost reward."""
        value = sqrt_raw_cost(raw)
        self._values.append(value)
        return score_in_window(value, self._values, self._low_quantile, self._high_quantile)
