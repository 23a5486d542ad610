#!/usr/bin/env bash
# One set-up command: creates .venv (or uses $ECGFOUNDER_VENV) and installs ecgfounder with its test
# tools. PyTorch: the CPU build where no NVIDIA GPU is present (an unpinned `torch` from PyPI would
# pull several GB of CUDA packages), the default CUDA build where one is.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ECGFOUNDER_VENV:-.venv}"
PY="${PYTHON:-python3}"
EXTRAS="${ECGFOUNDER_EXTRAS:-test}"
TORCH_VERSION="${ECGFOUNDER_TORCH_VERSION:-2.13.0}"

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
LOG="$(mktemp -t ecgfounder-setup.XXXXXX)"
trap 'rm -f "$LOG"' EXIT

. scripts/setup_reasons.sh  # why_pip, why_apt (the working folder is the repository root here)

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found, installing the CUDA build of torch==$TORCH_VERSION"
    pip install "torch==$TORCH_VERSION"
  else
    echo "setup: no GPU, installing the CPU build of torch==$TORCH_VERSION"
    # Only pip's configured index and find-links are used (no index address here): the CPU wheel
    # "+cpu" where pip can see one, else torch==VERSION from the configured index. Where that
    # index is plain PyPI, point pip at PyTorch's CPU wheel index first (PIP_EXTRA_INDEX_URL), or
    # torch==VERSION from PyPI is the CUDA build (several GB).
    if ! pip install "torch==$TORCH_VERSION+cpu" >"$LOG" 2>&1; then
      echo "setup: pip sees no torch==$TORCH_VERSION+cpu wheel ($(why_pip "$LOG")); installing torch==$TORCH_VERSION" \
           "from the configured index instead"
      pip install "torch==$TORCH_VERSION"
    fi
  fi
fi
pip install -e ".[${EXTRAS}]"

# The web page's test drives Debian's chromium with Playwright (Playwright's own browser download
# needs the internet). Skipped with ECGFOUNDER_BROWSER=0; without chromium that test skips itself.
if [[ "$EXTRAS" == *test* && "${ECGFOUNDER_BROWSER:-1}" != 0 ]] && ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the browser test"
    if ! { $SUDO apt-get install -y -q chromium >"$LOG" 2>&1 \
           || { $SUDO apt-get update -q >>"$LOG" 2>&1 && $SUDO apt-get install -y -q chromium >>"$LOG" 2>&1; }; }; then
      echo "setup: could not install chromium: $(why_apt "$LOG"); the browser test will be skipped"
    fi
  else
    echo "setup: no apt-get here to install chromium; the browser test will be skipped"
  fi
fi
echo "setup: done. Run the tests with: $VENV/bin/python -m pytest"
