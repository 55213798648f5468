"""Hot reload of a configuration file: poll it and apply every valid edit.

Every ``interval_s`` the file's (mtime, size, inode) is checked; when it changed, the file is
read and, if its content hash is new, loaded and validated off the event loop. A valid edit is
applied; an invalid one (:class:`InvalidEdit`) keeps the last good configuration, is logged
once per distinct bad content, and shows as :attr:`FileWatcher.last_error` (``/ready``) and a
``*_reload_failing`` gauge. Each replica (and worker) reloads on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Generic, TypeVar

from prometheus_client import Gauge

T = TypeVar("T")

logger = logging.getLogger("router_r1.reload")

_Signature = tuple[int, int, int]


class InvalidEdit(Exception):
    """The file's content cannot be applied; the message is one line naming the file."""


def _signature(path: Path) -> _Signature | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class FileWatcher(ABC, Generic[T]):
    """Polls one file; subclasses say how to :meth:`load` it and how to :meth:`apply` it."""

    what = "file"  # in log lines: "<what> reloaded from ..."

    def __init__(
        self, path: Path, *, reloads: Any, failing: Gauge, interval_s: float = 1.0
    ) -> None:
        """``reloads(result)``: the counter child for ``ok``/``failed``; ``failing``: the gauge."""
        self.path = path
        self._reloads = reloads
        self._failing = failing
        self._interval_s = interval_s
        self._signature = _signature(path)
        self._digest = self._read_digest()
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.last_reload_at: float | None = None  # Unix time of the last applied edit
        self.reloads = 0

    @abstractmethod
    def load(self, data: bytes) -> T:
        """Parse and fully validate the file's content (runs in a thread); raise InvalidEdit."""

    @abstractmethod
    def apply(self, value: T) -> str:
        """Put a loaded value in service (on the event loop); what to log about it."""

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"watch {self.path}")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.check()
            except Exception:  # never let the watcher die
                logger.exception("watching %s: unexpected error", self.path)

    async def check(self) -> bool:
        """One poll; True when an edit was applied."""
        signature = _signature(self.path)
        if signature is None or signature == self._signature:
            return False
        self._signature = signature
        try:
            data = await asyncio.to_thread(self.path.read_bytes)
        except OSError:
            return False  # being replaced: the next poll sees the new file
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._digest:
            return False
        self._digest = digest
        try:
            value = await asyncio.to_thread(self.load, data)
        except InvalidEdit as exc:
            self.last_error = str(exc)
            self._reloads("failed").inc()
            self._failing.set(1)
            logger.error("%s reload failed, still serving the last good one: %s", self.what, exc)
            return False
        summary = self.apply(value)
        self.last_error = None
        self.last_reload_at = time.time()
        self.reloads += 1
        self._reloads("ok").inc()
        self._failing.set(0)
        logger.info("%s reloaded from %s: %s", self.what, self.path, summary)
        return True

    def status(self) -> dict[str, Any]:
        """What ``/ready`` shows about this watcher."""
        return {
            "path": str(self.path),
            "reloads": self.reloads,
            "last_reload_at": self.last_reload_at,
            "last_error": self.last_error,
        }
