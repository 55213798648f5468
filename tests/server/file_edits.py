"""Helpers for hot-reload tests: edit a watched file, and poll a watcher until an edit settles."""

from __future__ import annotations

import os
from pathlib import Path

from server.file_watch import FileWatcher


def touch_later(path: Path, before_ns: int) -> None:
    """Move the file's mtime on by a second at least, so an edit is seen whatever the clock
    resolution."""
    later = max(path.stat().st_mtime_ns, before_ns + 1_000_000_000)
    os.utime(path, ns=(later, later))


def write_bytes(path: Path, data: bytes) -> None:
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_bytes(data)
    touch_later(path, before)


async def settled(watcher: FileWatcher[object]) -> bool:
    """Two polls (an edit applies once it is stable across two): True when it was applied.
    The first poll never applies one."""
    assert await watcher.check() is False, "an edit was applied on the poll that first saw it"
    return await watcher.check()
