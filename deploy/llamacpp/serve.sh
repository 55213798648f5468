#!/bin/sh
# Serve the packaged GGUF model named by $ROUTER_R1_GGUF (smollm2 | gemma3) on $PORT.
set -eu
model="$(python -c "from local_stack.models import ${ROUTER_R1_GGUF}_gguf as f; print(f())")"
exec python -m local_stack.llamacpp_server --model "$model" --host 0.0.0.0 --port "$PORT" "$@"
