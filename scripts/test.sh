#!/usr/bin/env bash
# Set up (idempotent) and run every check: the napari manifest with imports, ruff, and the test suite.
# GUI tests run under a virtual display (pytest-xvfb starts Xvfb); they skip only where none can be had.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_API=pyqt6 PYTEST_QT_API=pyqt6
echo "[test] npe2 validate napari-bvdm --imports"
.venv/bin/npe2 validate napari-bvdm --imports
echo "[test] ruff"
.venv/bin/ruff check src tests benchmarks
echo "[test] pytest"
.venv/bin/python -m pytest -q -ra --durations=30 "$@"
if [ "$#" = 0 ]; then  # the whole run: also what `pip install` of the wheel gives a user
  echo "[test] wheel"
  bash scripts/wheel_smoke.sh
fi
