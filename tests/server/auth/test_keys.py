"""Key files (YAML or JSON, hashed keys only) and the ``router-r1 keys`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from router_r1.cli import app
from server.auth import KeyFileError, KeyRing, hash_key, new_key

HASH_A = hash_key("rr1-a")


def test_yaml_file_plus_json_environment(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(
        f"keys:\n  - id: team-a\n    sha256: {HASH_A}\n    requests_per_minute: 5\n"
        "    budget_usd: 2.5\n    budget_period: day\n"
    )
    inline = json.dumps([{"id": "ops", "sha256": hash_key("rr1-ops"), "admin": True}])
    ring = KeyRing.load(path, inline)
    assert len(ring) == 2
    assert not ring.open_mode
    key = ring.lookup("rr1-a")
    assert key is not None
    assert key.id == "team-a"
    assert key.limits.requests_per_minute == 5
    assert key.limits.budget_usd == 2.5
    assert key.budget_period == "day"
    ops = ring.lookup("rr1-ops")
    assert ops is not None
    assert ops.admin
    assert ring.lookup("rr1-unknown") is None
    assert ring.lookup(HASH_A) is None  # the hash itself is not a key


def test_a_json_file_and_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([{"id": "a", "sha256": HASH_A}]))
    assert KeyRing.load(path).lookup("rr1-a") is not None
    empty = tmp_path / "empty.yaml"
    empty.write_text("keys: []\n")
    assert KeyRing.load(empty).open_mode
    assert KeyRing.load().open_mode


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("keys: [{id: a, sha256: nothex}]", "keys[0].sha256"),
        ("keys: [{id: a, key: plaintext}]", "keys[0]"),
        (f"keys: [{{id: a, sha256: {HASH_A}, budget_period: year}}]", "budget_period"),
        (f"keys: [{{id: 'bad id', sha256: {HASH_A}}}]", "keys[0].id"),
        (f"[{{id: a, sha256: {HASH_A}}}, {{id: a, sha256: {hash_key('x')}}}]", "twice"),
        (f"[{{id: a, sha256: {HASH_A}}}, {{id: b, sha256: {HASH_A}}}]", "same hash"),
        ("keys: {a: 1}", "expected a list"),
        ("[unclosed", "invalid YAML"),
    ],
)
def test_mistakes_are_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(KeyFileError) as info:
        KeyRing.load(path)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        KeyRing.load(tmp_path / "absent.yaml")


def test_new_keys_are_random_and_prefixed() -> None:
    first, second = new_key(), new_key()
    assert first != second
    assert first.startswith("rr1-")
    assert len(first) > 40


def test_keys_new_prints_a_usable_entry(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["keys", "new", "team-a", "--rpm", "60", "--budget", "5"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    key = next(line.removeprefix("key: ") for line in lines if line.startswith("key: "))
    entry_text = "\n".join(line for line in lines if not line.startswith("key: "))
    path = tmp_path / "keys.yaml"
    path.write_text(entry_text)
    assert yaml.safe_load(entry_text)[0]["requests_per_minute"] == 60
    found = KeyRing.load(path).lookup(key)
    assert found is not None
    assert found.budget_usd == 5


def test_keys_new_refuses_a_bad_id() -> None:
    result = CliRunner().invoke(app, ["keys", "new", "bad id"])
    assert result.exit_code == 2


def test_keys_hash_reads_stdin() -> None:
    result = CliRunner().invoke(app, ["keys", "hash"], input="rr1-a\n")
    assert result.exit_code == 0
    assert result.output.strip() == HASH_A
