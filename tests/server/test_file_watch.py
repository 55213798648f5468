"""FileWatcher: what counts as an edit, and what a failing or vanished file does."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from server.file_watch import FileWatcher, InvalidEdit
from tests.server.file_edits import settled


class NumberWatcher(FileWatcher[int]):
    """A file holding one integer."""

    def __init__(self, path: Path, interval_s: float = 60) -> None:
        self.metrics = registry = CollectorRegistry()
        self.counter = Counter("reloads", "", ["result"], registry=registry)
        self.gauge = Gauge("failing", "", registry=registry)
        super().__init__(
            path, reloads=self.counter.labels, failing=self.gauge, interval_s=interval_s
        )
        self.applied: list[int] = []

    def load(self, data: bytes) -> int:
        try:
            return int(data)
        except ValueError:
            raise InvalidEdit(f"{self.path}: not a number") from None

    def apply(self, value: int) -> str:
        if value < 0:
            raise RuntimeError("negative")
        self.applied.append(value)
        return str(value)


def write(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    later = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(later, later))


async def test_a_vanished_file_changes_nothing_until_it_is_back(tmp_path: Path) -> None:
    path = tmp_path / "n"
    write(path, "1")
    watcher = NumberWatcher(path)
    path.unlink()
    assert await settled(watcher) is False
    write(path, "2")
    assert await settled(watcher) is True
    assert watcher.applied == [2]
    status = watcher.status()
    assert status["reloads"] == 1
    assert status["last_error"] is None
    assert status["path"] == str(path)


async def test_the_same_bad_content_is_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "n"
    write(path, "1")
    watcher = NumberWatcher(path)
    write(path, "x")
    assert await settled(watcher) is False
    write(path, "x")  # touched again, same content
    assert await settled(watcher) is False
    assert watcher.metrics.get_sample_value("reloads_total", {"result": "failed"}) == 1
    assert watcher.metrics.get_sample_value("failing") == 1


async def test_the_polling_task_survives_an_unexpected_error(tmp_path: Path) -> None:
    path = tmp_path / "n"
    write(path, "1")
    watcher = NumberWatcher(path, interval_s=0.01)
    watcher.start()
    try:
        write(path, "-1")  # apply() raises: logged, the task goes on
        await asyncio.sleep(0.1)
        write(path, "3")
        for _ in range(200):
            if watcher.applied:
                break
            await asyncio.sleep(0.01)
    finally:
        await watcher.aclose()
    assert watcher.applied == [3]
