#!/usr/bin/env bash
# Build the wheel and the sdist, install the wheel into a clean virtual environment (CPU torch first, so pip
# does not pull a CUDA build), and run the installed command on the bundled models: what a user's
# `pip install napari-bvdm` gets, without the checkout on sys.path.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "[wheel] building wheel and sdist"
.venv/bin/python -m build -q --sdist --wheel --outdir "$WORK/dist" . >/dev/null
ls "$WORK"/dist/napari_bvdm-*.tar.gz >/dev/null
WHEEL=$(ls "$WORK"/dist/napari_bvdm-*.whl)
echo "[wheel] $(basename "$WHEEL")"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip >/dev/null
"$WORK/venv/bin/python" -m pip install -q "torch==2.13.0"
"$WORK/venv/bin/python" -m pip install -q "$WHEEL"
cd "$WORK"
"$WORK/venv/bin/bvdm" --version
"$WORK/venv/bin/python" - <<'PY'
import napari_bvdm, pathlib
from napari_bvdm.synthesis.recipe import DEFAULTS
root = pathlib.Path(napari_bvdm.__file__).parent
assert "site-packages" in str(root), root  # the installed package, not the checkout
for name in ("texture.safetensors", "flow.safetensors", "shape_model.json"):
    assert (DEFAULTS / name).is_file(), name
assert (root / "napari.yaml").is_file()
print("[wheel] bundled models and napari.yaml are in the wheel")
PY
echo '{"seed": 0, "shapes": {"frames": 3, "height": 96, "width": 96, "cells": 3}, "texture": {"passes": 2, "first_strength": 20, "refresh_strength": 2}, "output": {"videos": 1}}' > tiny.json
"$WORK/venv/bin/bvdm" demo --out "$WORK/demo" --config tiny.json --quiet
"$WORK/venv/bin/bvdm" validate "$WORK/demo"
echo "[wheel] ok: the installed wheel runs the demo on its bundled models"
