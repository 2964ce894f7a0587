"""Faults during `bvdm generate` and export: full disk, held lock, parallel writers, impossible cell counts,
invalid simulated lineages, SIGTERM/SIGKILL, folder permissions, kills at random moments, demo replacement.

Every test is named after its case in docs/troubleshooting.md ("Faults during generate and export").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from napari_bvdm.io.validator import check_lineage, validate_ctc
from napari_bvdm.synthesis.export import SYNTHESIS_JSON
from napari_bvdm.synthesis.recipe import DEFAULTS

LOCK = SYNTHESIS_JSON + ".lock"
TINY = {"seed": 3, "shapes": {"frames": 3, "height": 64, "width": 64, "cells": 2},
        "texture": {"model": "classical"}, "output": {"videos": 1}}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def _bundled_models():
    if not (DEFAULTS / "shape_model.json").is_file() or not (DEFAULTS / "flow.safetensors").is_file():
        pytest.skip("bundled models not present")


def _config(tmp_path: Path, name: str = "tiny.json", **shapes) -> Path:
    cfg = json.loads(json.dumps(TINY))
    cfg["shapes"].update(shapes)
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    return path


def _generate(cfg: Path, out: Path, *extra: str) -> list[str]:
    return ["generate", "--config", str(cfg), "-o", str(out), "--quiet", *extra]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "napari_bvdm.cli", *args]


def _hidden(*folders: Path) -> list[str]:
    return sorted(p.name for f in folders if f.is_dir() for p in f.iterdir() if p.name.startswith("."))


def _videos(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.is_dir() and p.name.isdigit())


def _recorded(out: Path) -> list[str]:
    return sorted(json.loads((out / SYNTHESIS_JSON).read_text())["videos"])


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _assert_consistent(out: Path) -> None:
    """Valid CTC, and the record lists exactly the sequences present (each with its GT)."""
    assert validate_ctc(out) == []
    seqs = _videos(out)
    assert seqs == _recorded(out)
    assert all((out / f"{s}_GT").is_dir() for s in seqs)


def _holder(path: Path) -> subprocess.Popen:
    """Another process that holds ``path`` locked (flock) until it is killed."""
    code = ("import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- 4. simulated lineage declaring a track twice ---------------------------------------------------------
def test_case4_model_fitted_with_one_division_simulates_valid_lineages():
    """A mother whose division is postponed (contact inhibition) was listed as ended and then again."""
    from napari_bvdm.io.lineage import frame_label_sets
    from napari_bvdm.io.toy import toy_sequence
    from napari_bvdm.io.video import Video
    from napari_bvdm.runtime.progress import run_job
    from napari_bvdm.shapes import SimulationConfig, simulate_masks
    from napari_bvdm.shapes.fit import FitConfig, fit_shape_model

    image, labels, lineage = toy_sequence()  # a valid CTC set with one division
    model = run_job(fit_shape_model(Video(image=image, labels={"TRA": labels}, lineage=lineage),
                                    FitConfig(calibration_frames=0)))
    assert model.params["division"]["enabled"] and model.params["division"]["count"] == 1
    divided = 0
    for seed in range(20):
        cfg = SimulationConfig(frames=12, height=128, width=128, seed=seed)
        video = run_job(simulate_masks(model, cfg))
        assert check_lineage(video.lineage, frame_label_sets(video.labels), cfg.frames) == [], seed
        divided += int((video.lineage[:, 3] > 0).any())
    assert divided >= 5
