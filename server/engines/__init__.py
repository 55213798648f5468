"""Policy engines: where the Router-R1 policy is tokenized and sampled.

The episode loop sees only :class:`PolicyEngine`; it never applies a chat template or
tokenizes itself, so the ids it builds are exactly the checkpoint's own (spec section 1).
A profile's policy may be served by several replicas: :mod:`server.engines.replicas` hands
each episode an engine pinned to one of them (:mod:`server.engines.episode_engine`: failover,
the session header), with a breaker per replica (:mod:`.breaker`) and ``/health`` polled
(:mod:`.health`); :mod:`.pool` keeps one replica set per distinct policy.

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

llama.cpp (``engine: llamacpp``, :class:`LlamaServerEngine`, implemented)
    Served by llama.cpp's own ``llama-server`` (built once from source by
    ``scripts/setup_llama_server.sh``; command lines in
    :mod:`local_stack.llama_server_process`); the engine speaks its *native* API (the full
    reference, read in the pinned source, is :mod:`server.engines.llama_server`).
    - Tokenization: ``POST /tokenize`` ``{"content", "add_special": false,
      "parse_special": true}`` (special-token text parsed, as with HF tokenizers);
      ``POST /detokenize``. Chat template: ``POST /apply-template`` renders the GGUF's
      Jinja template with llama.cpp's own engine, then ``/tokenize``; a BOS the template
      wrote and llama.cpp cut off is put back. A model without a template → error.
    - Generation: ``POST /completion`` with ``prompt`` = token ids (no BOS added),
      ``stop``; the reply's ``stopping_word`` is put back at the end of the turn text
      (llama-server always cuts it off). EOS never reaches the text. Its sampling defaults
      are not neutral (top_k 40, min_p 0.05, ...): ``samplers: ["temperature", "top_p"]``
      and every other sampler off, so sampling is temperature/top-p only, as in training.
      Streaming is SSE; the last event (``"stop": true``) carries the usage.
    - Grammar: a GBNF string in the ``grammar`` field (the same string vLLM takes in
      ``structured_outputs.grammar``; built by ``router_model.protocol.grammar``).
    - ``--parallel N`` slots with continuous batching; requests beyond them wait in the
      server (no client-side queue).
    - Prefix reuse: a request goes to the slot whose cache shares the longest prefix with
      its prompt, and the bounded RAM prompt cache (``--cache-ram``) keeps slot states for
      interleaved episodes; ``timings.cache_n`` tells how many prompt tokens were reused
      (``bench/bench_reprefill.py`` measures it).
    - Readiness: ``GET /health`` (503 while loading).
"""

from router_model.episode.engine import (
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
from server.engines.llama_server import LlamaServerEngine
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
    "LlamaServerEngine",
    "PolicyEngine",
    "UnsupportedEngine",
    "VLLMEngine",
    "build_policy_engine",
]
