#!/usr/bin/env bash
# Idempotent setup: system packages for a virtual display, a virtual environment at .venv,
# torch pinned to the CPU wheel, then napari-bvdm in editable mode with its test extras.
# Usage: bash scripts/setup.sh [--no-test]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

if [ "${BVDM_SKIP_APT:-0}" != 1 ] && ! command -v xvfb-run >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing Xvfb and Qt's xcb libraries (apt-get)"
    $SUDO apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq xvfb xauth libxcb-icccm4 \
      libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-randr0 libxcb-render-util0 \
      libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 \
      libdbus-1-3 libfontconfig1 >/dev/null || echo "[setup] warning: apt-get failed; GUI tests will skip"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $PY"
  "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip >/dev/null
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build on CPU machines.
.venv/bin/python -c "import torch" 2>/dev/null || $PIP install -q "torch==2.13.0"
if [ "${1:-}" = "--no-test" ]; then
  $PIP install -q -e ".[napari]"
else
  $PIP install -q -e ".[test]"
fi
echo "[setup] done: $(.venv/bin/python -c 'import torch, napari_bvdm; print("torch", torch.__version__)')"
