# Sourced by the setup scripts. Each keeps one virtual environment under ~/.cache/router-r1,
# rebuilt from scratch only when its stamp (named by the pinned versions) is missing.

elapsed() { echo "$(( $(date +%s) - $1 ))s"; }

# pip's output, filtered to the lines worth seeing (PIP_PROGRESS: an extended regex).
pip_progress() {
  { grep --line-buffered -E "${PIP_PROGRESS:-^(Successfully|ERROR)}" || true; } | sed -u 's/^/    /'
}

# fresh_torch_venv VENV TORCH_VERSION: a new venv at VENV holding torch, installed first and
# alone so that pip takes the CPU wheel from local disk (find-links), never a CUDA build.
fresh_torch_venv() {
  local venv="$1" torch_version="$2"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip 2>&1 | pip_progress
  "$venv/bin/python" -m pip install "torch==$torch_version" 2>&1 | pip_progress
}

# mark_installed VENV STAMP: the venv is complete (older stamps go).
mark_installed() {
  rm -f "$1"/.installed-*
  touch "$2"
}
