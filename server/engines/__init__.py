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

llama.cpp (``engine: llamacpp``, :class:`LlamaCppEngine`, implemented)
    Served by ``python -m local_stack.llamacpp_server``: llama-cpp-python's own
    OpenAI-compatible server app plus the few endpoints and fields below, because the
    stock server cannot serve a policy faithfully (its ``/v1/completions`` ``prompt``
    accepts only strings, re-tokenized as a whole; it always cuts stop strings off; it
    has no chat-template tokenize endpoint; its default ``interrupt_requests`` aborts a
    running stream when another request arrives). Against a stock server the engine
    fails with an explanation instead of serving a different context.
    - Tokenization: ``POST /extras/tokenize`` ``{"input", "add_special": false}`` (stock
      endpoint; ``add_special`` is the addition: the stock one always adds the model's
      BOS), special-token text is parsed as with Hugging Face tokenizers;
      ``POST /extras/detokenize`` ``{"tokens"}`` → ``text``. Chat template:
      ``POST /extras/tokenize/chat`` ``{"messages", "add_generation_prompt"}`` renders the
      GGUF's embedded ``tokenizer.chat_template`` exactly as ``apply_chat_template``
      does (:mod:`local_stack.chat_template`: sandboxed Jinja, trim/lstrip blocks,
      ``tojson``, ``raise_exception``, the BOS/EOS strings) and tokenizes it with special
      tokens parsed and none added. A model without a template (a base model) → 400.
    - Generation: ``POST /v1/completions`` with ``prompt`` = token ids (the addition)
      and ``include_stop_str_in_output`` (the addition; the server tells a stop string
      from an end-of-generation token by the last sampled token). EOS never reaches the
      text. llama-cpp-python's sampling defaults are not neutral (top_k 40, min_p 0.05,
      repeat_penalty 1.1): the engine sends top_k 0, min_p 0, repeat_penalty 1 so that
      sampling is temperature/top-p only, as in training. Streaming is SSE; the final
      chunk carries ``usage`` (the addition).
    - Grammar: a GBNF string in the ``grammar`` field (the same string vLLM takes in
      ``structured_outputs.grammar``; built by ``router_model.protocol.grammar``).
    - One request at a time (no batching): the engine sends one request at a time
      (``max_in_flight``) and concurrent episodes queue in the gateway.
    - Prefix reuse: one KV sequence; a request reuses the longest common token prefix
      with the previous request (so consecutive turns of one episode re-prefill only the
      new tokens), and with ``--cache true`` a RAM cache of saved states serves
      interleaved episodes. ``usage.prompt_tokens_details.cached_tokens`` tells how many
      prompt tokens were reused (``bench/bench_reprefill.py`` measures it).
    - Readiness: ``GET /health`` (the addition).
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
from server.engines.llamacpp import LlamaCppEngine
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
    "LlamaCppEngine",
    "PolicyEngine",
    "UnsupportedEngine",
    "VLLMEngine",
    "build_policy_engine",
]
