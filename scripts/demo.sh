#!/usr/bin/env bash
# Set up (idempotent, without test tools) and run the main job on the bundled defaults:
# a small synthetic CTC dataset with a preview, written to ./bvdm-demo (or the folder given).
set -euo pipefail
cd "$(dirname "$0")/.."
BVDM_SKIP_APT=1 bash scripts/setup.sh --no-test
OUT=${1:-bvdm-demo}
.venv/bin/bvdm demo --out "$OUT" --overwrite
