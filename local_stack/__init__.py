"""Running the whole stack on one machine: small real models from PyPI packages, llama.cpp's
own ``llama-server`` processes and the proxy (``router-r1 up``)."""

from local_stack.models import SMOLLM2_FILE, ModelNotInstalled, models_cache_dir, smollm2_gguf

__all__ = ["SMOLLM2_FILE", "ModelNotInstalled", "models_cache_dir", "smollm2_gguf"]
