"""Policy engines: where the Router-R1 policy is tokenized and sampled.

The episode loop sees only :class:`PolicyEngine`; it never applies a chat template or
tokenizes itself, so the ids it builds are exactly the checkpoint's own (spec section 1).

Differences between engines, in one place:

vLLM (``engine: vllm``, :class:`VLLMEngine`, implemented)
    - Tokenization: ``POST /tokenize`` at the server *root* (not under ``/v1``);
      ``{"model", "messages": [...], "add_generation_prompt": true}`` applies the
      checkpoint's chat template, ``{"model", "prompt", "add_special_tokens": false}``
      tokenizes a piece. ``POST /detokenize`` ``{"model", "tokens"}`` → ``prompt``.
    - Generation: ``POST /v1/completions`` with ``prompt`` = a list of token ids, so the
      engine sees exactly the ids we built; ``stop`` + ``include_stop_str_in_output``,
      ``skip_special_tokens`` (EOS never reaches the text), ``seed``; streaming is SSE
      with ``stream_options.include_usage``.
    - Grammar: ``structured_outputs: {"grammar": ...}`` (vLLM >= 0.12; older servers
      used ``guided_grammar``).
    - Serves many requests at once with continuous batching; automatic prefix caching
      makes each turn's prompt (the previous turn's prompt plus a suffix) cheap.
    - Readiness: ``GET /health``.

llama.cpp (``engine: llamacpp``, llama-cpp-python's server) — NOT IMPLEMENTED YET
    A later issue adds it; :func:`build_policy_engine` refuses the profile until then.
    Known differences to handle there: tokenization via ``POST /extras/tokenize``
    (``{"input", "add_special"}``; no chat-template endpoint, so the chat template must
    come from the server's chat handler or the GGUF metadata), ``/extras/detokenize``;
    completions accept token-id prompts; the grammar is a GBNF string in the
    ``grammar`` field; one request is served at a time (no batching), so the gateway
    must queue episodes for it.
"""

from server.engines.base import (
    ACTION_STOPS,
    EngineError,
    EngineUnavailable,
    FinishReason,
    Generation,
    GenerationChunk,
    GenerationParams,
    PolicyEngine,
)
from server.engines.factory import EngineConfigError, UnsupportedEngine, build_policy_engine
from server.engines.vllm import VLLMEngine

__all__ = [
    "ACTION_STOPS",
    "EngineConfigError",
    "EngineError",
    "EngineUnavailable",
    "FinishReason",
    "Generation",
    "GenerationChunk",
    "GenerationParams",
    "PolicyEngine",
    "UnsupportedEngine",
    "VLLMEngine",
    "build_policy_engine",
]
