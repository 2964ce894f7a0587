"""The napari manifest: valid, and every python_name imports (npe2 validate --imports)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_npe2_validate_with_imports():
    exe = Path(sys.executable).with_name("npe2")
    npe2 = str(exe) if exe.exists() else shutil.which("npe2")
    if npe2 is None:
        pytest.skip("npe2 is not installed")
    p = subprocess.run([npe2, "validate", "napari-bvdm", "--imports"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "valid" in (p.stdout + p.stderr).lower()


def test_reader_contribution_points_at_get_reader():
    npe2 = pytest.importorskip("npe2")
    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-bvdm")
    readers = manifest.contributions.readers or []
    cmds = {c.id: c.python_name for c in manifest.contributions.commands or []}
    assert any(cmds.get(r.command) == "napari_bvdm._reader:get_reader" and r.accepts_directories
               for r in readers)
