"""Hot reload never applies a partial, empty or vanished file.

An edit applies only once its content is the same on two consecutive polls and it is
servable (at least one profile and one model, unless ``allow_empty: true``); everything else
keeps the last good registry and is reported once: one ERROR line, ``last_error`` (``/ready``),
``router_r1_registry_reload_failing`` 1. The key file watcher shares the same rules."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from router_model.registry import Registry
from server import file_watch
from server.auth import AccessControl, KeyRing, hash_key
from server.auth.key_watch import KeyFileWatcher
from server.metrics import Metrics
from server.registry_watch import RegistryWatcher
from server.store.factory import build_store
from server.store.settings import RedisSettings
from tests.fakes.registry import REGISTRY_FILE
from tests.server.file_edits import settled, write_bytes


def registry_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(REGISTRY_FILE.read_text())
    return data


def text_of(data: dict[str, Any]) -> bytes:
    return yaml.safe_dump(data, sort_keys=False).encode()


def repriced(price: float) -> dict[str, Any]:
    data = registry_data()
    data["models"][0]["pricing"]["output_per_1m"] = price
    return data


class Watched:
    """A registry watcher on a file, the registries it applied and its metrics."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.applied: list[Registry] = []
        self.metrics = Metrics()
        self.watcher = RegistryWatcher(path, self.applied.append, self.metrics, interval_s=60)

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    @property
    def failing(self) -> float:
        return self.metric("router_r1_registry_reload_failing")

    @property
    def failures(self) -> float:
        return self.metric("router_r1_registry_reloads_total", result="failed")


@pytest.fixture
def watched(tmp_path: Path) -> Watched:
    path = tmp_path / "registry.yaml"
    write_bytes(path, text_of(registry_data()))
    return Watched(path)


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_truncated_file_is_refused_and_reported_once(
    watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    write_bytes(watched.path, b"")
    assert await settled(watched.watcher) is False
    assert watched.applied == []
    error = watched.watcher.last_error or ""
    assert error.startswith(f"{watched.path}: defines no router profile and no model")
    assert watched.failing == 1
    assert watched.failures == 1
    assert await settled(watched.watcher) is False  # still empty: not reported again
    write_bytes(watched.path, b"")  # touched, same (empty) content
    assert await settled(watched.watcher) is False
    assert watched.failures == 1
    (record,) = errors(caplog)
    assert record.name == "router_r1.reload"
    assert "still serving the last good one" in record.getMessage()
    assert watched.watcher.status()["last_error"] == error


async def test_a_file_caught_mid_write_is_applied_only_once_complete(watched: Watched) -> None:
    write_bytes(watched.path, b"")  # the truncation that starts an in-place write
    assert await watched.watcher.check() is False
    half = registry_data()
    del half["profiles"]
    write_bytes(watched.path, text_of(half))  # models written, profiles not yet
    assert await watched.watcher.check() is False
    write_bytes(watched.path, text_of(repriced(7.0)))  # the rest arrives
    assert await watched.watcher.check() is False  # seen once: not yet stable
    assert await watched.watcher.check() is True
    assert [r.models[0].pricing.output_per_1m for r in watched.applied] == [7.0]
    assert watched.failures == 0  # nothing half-written was ever judged
    assert watched.watcher.last_error is None


async def test_a_half_written_file_that_parses_is_never_applied(watched: Watched) -> None:
    half = registry_data()
    del half["profiles"]  # a writer that stalled after the models
    write_bytes(watched.path, text_of(half))
    assert await settled(watched.watcher) is False
    assert watched.applied == []
    assert "defines no router profile (" in (watched.watcher.last_error or "")
    assert watched.failing == 1
    write_bytes(watched.path, text_of(repriced(6.0)))
    assert await settled(watched.watcher) is True
    assert all(r.profiles for r in watched.applied)
    assert watched.failing == 0
    assert watched.watcher.last_error is None


async def test_removing_every_profile_applies_when_explicit(watched: Watched) -> None:
    data = registry_data()
    data["profiles"] = []
    write_bytes(watched.path, text_of(data))
    assert await settled(watched.watcher) is False
    data["allow_empty"] = True
    write_bytes(watched.path, text_of(data))
    assert await settled(watched.watcher) is True
    assert watched.applied[-1].profiles == ()


async def test_a_deleted_file_is_reported_and_its_return_applies(
    watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    original = watched.path.read_bytes()
    watched.path.unlink()
    assert await settled(watched.watcher) is False
    assert "missing or unreadable" in (watched.watcher.last_error or "")
    assert watched.failing == 1
    assert await settled(watched.watcher) is False  # reported once
    assert len(errors(caplog)) == 1
    write_bytes(watched.path, original)  # back as it was: nothing to reload, all is well
    assert await settled(watched.watcher) is False
    assert watched.watcher.last_error is None
    assert watched.failing == 0
    watched.path.unlink()
    write_bytes(watched.path, text_of(repriced(5.0)))  # deleted and recreated in one poll
    assert await settled(watched.watcher) is True
    assert watched.applied[-1].models[0].pricing.output_per_1m == 5.0


async def test_a_file_that_is_not_utf8_is_refused(watched: Watched) -> None:
    write_bytes(watched.path, text_of(registry_data()).replace(b"Qwen", b"Qw\xe9n", 1))
    assert await settled(watched.watcher) is False
    assert "not UTF-8 text" in (watched.watcher.last_error or "")
    assert watched.applied == []


async def test_a_file_replaced_by_rename_is_applied(watched: Watched) -> None:
    """The safe way to write a config: write a temporary file, rename it over the old one.
    Same size and mtime (the inode tells them apart)."""
    stat = watched.path.stat()
    edited = text_of(repriced(4.0))
    old = text_of(registry_data())
    assert len(edited) == len(old)  # "0.3" -> "4.0": the size does not change
    replacement = watched.path.with_suffix(".tmp")
    replacement.write_bytes(edited)
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, watched.path)
    assert await settled(watched.watcher) is True
    assert watched.applied[-1].models[0].pricing.output_per_1m == 4.0


async def test_content_changing_on_every_poll_is_never_applied(watched: Watched) -> None:
    for price in (1.0, 2.0, 3.0, 4.0):  # a writer still busy at every poll
        write_bytes(watched.path, text_of(repriced(price)))
        assert await watched.watcher.check() is False
    assert watched.applied == []
    assert await watched.watcher.check() is True  # it stopped changing
    assert watched.applied[-1].models[0].pricing.output_per_1m == 4.0


async def test_an_unchanged_file_is_not_read_again(
    watched: Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    real_read = file_watch._read

    def counting_read(path: Path) -> tuple[bytes | None, str]:
        reads.append(path)
        return real_read(path)

    monkeypatch.setattr(file_watch, "_read", counting_read)
    for _ in range(3):
        assert await watched.watcher.check() is False
    assert reads == []  # same (mtime, size, inode): a stat per poll, no read
    write_bytes(watched.path, text_of(repriced(2.0)))
    assert await settled(watched.watcher) is True
    assert len(reads) == 2  # the poll that saw the edit and the one that found it stable


# ---------------------------------------------------------------------------- the key file


async def test_the_key_file_applies_only_stable_edits_and_keeps_its_rules(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"

    def keys(*ids: str) -> bytes:
        return json.dumps(
            {"keys": [{"id": i, "sha256": hash_key(f"rr1-{i}")} for i in ids]}
        ).encode()

    write_bytes(path, keys("a"))
    metrics = Metrics()
    access = AccessControl(KeyRing.load(path, None), build_store(RedisSettings()), metrics)
    watcher = KeyFileWatcher(path, access, metrics, interval_s=60)
    write_bytes(path, b"")  # truncated mid-write: would be "no keys"
    assert await watcher.check() is False
    write_bytes(path, keys("a", "b"))
    assert await watcher.check() is False
    assert access.keys.lookup("rr1-b") is None  # not yet stable
    assert await watcher.check() is True
    assert access.keys.lookup("rr1-b") is not None
    assert watcher.last_error is None
    write_bytes(path, b"")  # emptied for good: the "no keys left" rule refuses it
    assert await settled(watcher) is False
    assert "no keys left" in (watcher.last_error or "")
    assert access.keys.lookup("rr1-a") is not None
