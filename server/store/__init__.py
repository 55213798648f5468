"""Shared state: the :class:`SharedStore` interface, in memory or on Redis."""

from server.store.base import (
    Admission,
    LimitKind,
    Limits,
    ModelCapacity,
    Reservation,
    SharedStore,
    StoredTrace,
    StoreUnavailable,
    TraceSummary,
    UsageSnapshot,
)
from server.store.factory import build_store
from server.store.memory import MemoryStore
from server.store.redis_store import RedisStore
from server.store.windows import BudgetPeriod, Window, budget_window, minute_window

__all__ = [
    "Admission",
    "BudgetPeriod",
    "LimitKind",
    "Limits",
    "MemoryStore",
    "ModelCapacity",
    "RedisStore",
    "Reservation",
    "SharedStore",
    "StoreUnavailable",
    "StoredTrace",
    "TraceSummary",
    "UsageSnapshot",
    "Window",
    "budget_window",
    "build_store",
    "minute_window",
]
