"""Where the converted HF checkpoint lives, and how a finished conversion is recognised."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_stack.checkpoints import (
    CONVERSION_MARKER,
    ConversionRecord,
    conversion_record,
    converted_smollm2_dir,
    require_converted,
)

RECORD = ConversionRecord(
    format=1,
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_bytes=98_362_432,
    transformers="5.19.0",
    dtype="float32",
)


def test_lives_under_the_models_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_R1_CACHE", str(tmp_path))
    assert converted_smollm2_dir() == tmp_path / "models" / "smollm2-135m-instruct-hf"


def test_a_finished_conversion_has_config_and_marker(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    assert conversion_record(checkpoint) is None
    with pytest.raises(FileNotFoundError, match=r"scripts/setup_vllm\.sh"):
        require_converted(checkpoint)
    checkpoint.mkdir()
    (checkpoint / CONVERSION_MARKER).write_text(RECORD.model_dump_json())
    assert conversion_record(checkpoint) is None  # no config.json: interrupted
    (checkpoint / "config.json").write_text("{}")
    assert conversion_record(checkpoint) == RECORD
    assert require_converted(checkpoint) == checkpoint


def test_a_damaged_marker_means_not_converted(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / CONVERSION_MARKER).write_text("{not json")
    assert conversion_record(tmp_path) is None
    (tmp_path / CONVERSION_MARKER).write_text('{"format": 1}')
    assert conversion_record(tmp_path) is None
