"""Fixed time windows for limits: the per-minute window and the budget period (UTC calendar)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

BudgetPeriod = Literal["hour", "day", "week", "month"]

_MARGIN_S = 60  # keys outlive their window a little, so a late write still lands in it


@dataclass(frozen=True)
class Window:
    """One window: ``id`` names it in store keys; ``ends_in_s`` until the next one starts."""

    id: str
    ends_in_s: float

    @property
    def ttl_s(self) -> int:
        return math.ceil(self.ends_in_s) + _MARGIN_S

    @property
    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.ends_in_s))


def minute_window(now: float) -> Window:
    """The minute ``now`` (Unix seconds) falls in."""
    return Window(id=f"m{int(now // 60)}", ends_in_s=60 - now % 60)


def budget_window(now: float, period: BudgetPeriod) -> Window:
    """The calendar hour/day/ISO week/month (UTC) ``now`` falls in."""
    at = datetime.fromtimestamp(now, UTC)
    if period == "hour":
        start = at.replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=1)
        name = start.strftime("h%Y%m%d%H")
    elif period == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
        name = start.strftime("d%Y%m%d")
    elif period == "week":
        start = (at - timedelta(days=at.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        end = start + timedelta(weeks=1)
        year, week, _ = start.isocalendar()
        name = f"w{year}{week:02d}"
    else:
        start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        name = start.strftime("mo%Y%m")
    return Window(id=name, ends_in_s=(end - at).total_seconds())
