"""Key file hot reload: keys added, revoked or re-limited apply at once; bad edits keep the
last good keys, and an edit cannot silently turn a keyed gateway into an open one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from server.auth import AccessControl, KeyRing, hash_key
from server.auth.key_watch import KeyFileWatcher
from server.metrics import Metrics
from server.store.factory import build_store
from server.store.settings import RedisSettings
from tests.server.file_edits import settled


def entry(key_id: str, key: str, **limits: Any) -> dict[str, Any]:
    return {"id": key_id, "sha256": hash_key(key), **limits}


def write(path: Path, content: list[dict[str, Any]] | str) -> None:
    """Write the file and move its mtime on, so an edit is seen whatever the clock resolution."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(content if isinstance(content, str) else json.dumps({"keys": content}))
    later = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(later, later))


def watched(path: Path, inline: str | None = None) -> tuple[AccessControl, KeyFileWatcher, Metrics]:
    metrics = Metrics()
    store = build_store(RedisSettings())
    access = AccessControl(KeyRing.load(path, inline), store, metrics)
    return access, KeyFileWatcher(path, access, metrics, inline=inline, interval_s=60), metrics


def failing(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("router_r1_api_key_reload_failing") or 0.0


async def test_added_revoked_and_relimited_keys_apply(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write(path, [entry("a", "rr1-a")])
    access, watcher, _ = watched(path)
    assert await settled(watcher) is False  # nothing changed yet
    write(path, [entry("a", "rr1-a", requests_per_minute=5), entry("b", "rr1-b")])
    assert await settled(watcher) is True
    a = access.keys.lookup("rr1-a")
    assert a is not None
    assert a.requests_per_minute == 5
    assert access.keys.lookup("rr1-b") is not None
    write(path, [entry("b", "rr1-b")])
    assert await settled(watcher) is True
    assert access.keys.lookup("rr1-a") is None  # revoked
    assert watcher.reloads == 2


async def test_a_bad_edit_keeps_the_last_good_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write(path, [entry("a", "rr1-a")])
    access, watcher, metrics = watched(path)
    write(path, '{"keys": [{"id": "a", "sha256": "nothex"}]}')
    assert await settled(watcher) is False
    assert access.keys.lookup("rr1-a") is not None
    assert watcher.last_error is not None
    assert str(path) in watcher.last_error
    assert "keys[0].sha256" in watcher.last_error
    assert failing(metrics) == 1
    write(path, [entry("a", "rr1-a"), entry("c", "rr1-c")])
    assert await settled(watcher) is True
    assert watcher.last_error is None
    assert failing(metrics) == 0


async def test_emptying_the_file_does_not_open_the_gateway(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write(path, [entry("a", "rr1-a")])
    access, watcher, _ = watched(path)
    write(path, [])
    assert await settled(watcher) is False
    assert not access.open_mode
    assert access.keys.lookup("rr1-a") is not None
    assert "open the gateway to anyone" in (watcher.last_error or "")


async def test_an_open_gateway_gets_keys_and_keeps_its_inline_ones(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write(path, [])
    access, watcher, _ = watched(path)
    assert access.open_mode
    write(path, [entry("a", "rr1-a")])
    assert await settled(watcher) is True
    assert not access.open_mode
    inline = json.dumps([entry("ops", "rr1-ops", admin=True)])
    access, watcher, _ = watched(path, inline)
    write(path, [entry("b", "rr1-b")])
    assert await settled(watcher) is True
    assert access.keys.lookup("rr1-ops") is not None  # ROUTER_R1_API_KEYS stays
    assert access.keys.lookup("rr1-b") is not None
