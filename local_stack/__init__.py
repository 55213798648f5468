"""Running the whole stack on one machine: small real models from PyPI packages, llama.cpp
engines and the proxy (``router-r1 up``)."""

from local_stack.models import (
    GEMMA3_FILE,
    SMOLLM2_FILE,
    ModelNotInstalled,
    gemma3_gguf,
    models_cache_dir,
    smollm2_gguf,
)

__all__ = [
    "GEMMA3_FILE",
    "SMOLLM2_FILE",
    "ModelNotInstalled",
    "gemma3_gguf",
    "models_cache_dir",
    "smollm2_gguf",
]
