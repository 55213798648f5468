#!/usr/bin/env bash
# One command for the whole local stack on a fresh machine: installs what is missing (system
# packages, .venv, llama-server, the small models; a second run reuses all of it), then runs
# `router-r1 up`: two llama-servers (policy + upstream pool) and the proxy on loopback.
# Options go to `router-r1 up` (e.g. --port 8080). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/router-r1 up "$@"
