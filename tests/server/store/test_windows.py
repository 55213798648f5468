"""Limit windows: the minute and the UTC calendar budget periods."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from server.store import budget_window, minute_window


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def test_minute_window() -> None:
    window = minute_window(at(2025, 3, 1, 12, 30, 15))
    assert window.ends_in_s == pytest.approx(45)
    assert window.retry_after_s == 45
    assert window.ttl_s == 45 + 60
    assert minute_window(at(2025, 3, 1, 12, 30, 59)).id == window.id
    assert minute_window(at(2025, 3, 1, 12, 31, 0)).id != window.id


@pytest.mark.parametrize(
    ("period", "now", "name", "ends_in_s"),
    [
        ("hour", at(2025, 3, 1, 12, 30), "h2025030112", 1800),
        ("day", at(2025, 3, 1, 18, 0), "d20250301", 6 * 3600),
        ("week", at(2025, 3, 2, 0, 0), "w202509", 24 * 3600),  # a Sunday: Monday starts next
        ("month", at(2025, 12, 31, 0, 0), "mo202512", 24 * 3600),
        ("month", at(2025, 2, 28, 12, 0), "mo202502", 12 * 3600),
    ],
)
def test_budget_periods(period: str, now: float, name: str, ends_in_s: float) -> None:
    window = budget_window(now, period)  # type: ignore[arg-type]
    assert window.id == name
    assert window.ends_in_s == pytest.approx(ends_in_s)
