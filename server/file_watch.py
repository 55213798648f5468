"""Hot reload of a configuration file: poll it and apply every valid edit once it is stable.

Every ``interval_s`` the file's (mtime, size, inode) is checked. An edit is applied only when
its content has been the same on two consecutive polls (*stable*) and validates: a writer
that truncates the file and then writes it (every in-place save), or that writes it in
several pieces, is never caught half-way, because the content read mid-write differs from
the content read one poll later. So an edit takes effect one to two intervals after it was
saved. A stable edit is loaded and validated off the event loop; a valid one is applied; an
invalid one (:class:`InvalidEdit`: unparsable, not UTF-8, refused by the subclass's rules)
keeps the last good configuration, is logged once (one ERROR line) per distinct bad
content, and shows as :attr:`FileWatcher.last_error` (``/ready``) and a
``*_reload_failing`` gauge of 1. A file that is deleted (and stays deleted for a poll) is
reported the same way; one replaced by a rename (a new inode) is just an edit. Each replica
(and worker) reloads on its own.
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
_MISSING = "missing"  # the digest of "no readable file"


class InvalidEdit(Exception):
    """The file's content cannot be applied; the message is one line naming the file."""


def _signature(path: Path) -> _Signature | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _read(path: Path) -> tuple[bytes | None, str]:
    """The file's bytes and their digest, or ``(None, "missing")`` when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError:
        return None, _MISSING
    return data, hashlib.sha256(data).hexdigest()


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
        self._digest = _read(path)[1]  # of the content in service
        self._candidate: str | None = None  # read on the last poll, not yet stable
        self._reported: str | None = None  # the bad content last reported
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
        """One poll; True when an edit was applied (at the earliest on the poll after the one
        that first saw it: see the module docstring)."""
        signature = _signature(self.path)
        if signature == self._signature and self._candidate is None:
            return False
        self._signature = signature
        data, digest = await asyncio.to_thread(_read, self.path)
        if digest == self._digest:  # back to (or still) the content in service
            self._candidate = None
            self._healthy()
            return False
        if digest != self._candidate:  # new content: wait one poll for it to settle
            self._candidate = digest
            return False
        self._candidate = None
        if digest == self._reported:
            return False  # this bad content was reported already
        self._reported = digest
        if data is None:
            self._report(
                f"{self.path}: the file is missing or unreadable (deleted, or replaced "
                "without a rename?)"
            )
            return False
        try:
            value = await asyncio.to_thread(self.load, data)
        except InvalidEdit as exc:
            self._report(str(exc))
            return False
        summary = self.apply(value)
        self._digest = digest
        self._healthy()
        self.last_reload_at = time.time()
        self.reloads += 1
        self._reloads("ok").inc()
        logger.info("%s reloaded from %s: %s", self.what, self.path, summary)
        return True

    def _report(self, message: str) -> None:
        self.last_error = message
        self._reloads("failed").inc()
        self._failing.set(1)
        logger.error("%s reload failed, still serving the last good one: %s", self.what, message)

    def _healthy(self) -> None:
        self._reported = None
        self.last_error = None
        self._failing.set(0)

    def status(self) -> dict[str, Any]:
        """What ``/ready`` shows about this watcher."""
        return {
            "path": str(self.path),
            "reloads": self.reloads,
            "last_reload_at": self.last_reload_at,
            "last_error": self.last_error,
        }
