#!/bin/sh
# Serve the GGUF model named by $ROUTER_R1_GGUF (qwen | smollm2) with llama-server on $PORT.
# The flags are the local stack's (local_stack/llama_server_process.py): parallel slots, a
# bounded RAM prompt cache, Prometheus /metrics, nothing downloaded, no web UI; the service's
# command adds --alias, --parallel, --ctx-size, --cache-ram and --threads.
set -eu
exec llama-server --model "/models/${ROUTER_R1_GGUF}.gguf" --host 0.0.0.0 --port "$PORT" \
  --jinja --offline --no-webui --metrics "$@"
