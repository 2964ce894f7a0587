"""`bvdm demo`: the main job writes a valid CTC dataset and a preview; it replaces only its own datasets."""

from __future__ import annotations

import json

import pytest

from napari_bvdm.cli import main
from napari_bvdm.io.validator import validate_ctc


def test_demo_small(tmp_path, capsys):
    out = tmp_path / "demo"
    cfg = tmp_path / "small.json"
    cfg.write_text(json.dumps({"texture": {"model": "classical"}, "output": {"videos": 1},
                               "shapes": {"frames": 4, "height": 96, "width": 128, "cells": 3}}))
    args = ["demo", "--out", str(out), "--config", str(cfg), "--quiet"]
    assert main(args) == 0
    assert validate_ctc(out) == []
    assert (out / "preview.png").stat().st_size > 0 and (out / "preview.gif").stat().st_size > 0
    assert len(list((out / "01").glob("t*.tif"))) == 4
    meta = json.loads((out / "synthesis.json").read_text())
    assert meta["run"]["config"]["shapes"]["frames"] == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left
    capsys.readouterr()
    # an existing target is never overwritten unless asked
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0 and validate_ctc(out) == []
    # a folder that bvdm did not write is never replaced, and keeps its files
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert main(["demo", "--out", str(other), "--config", str(cfg), "--overwrite", "--quiet"]) == 2
    assert "not a dataset written by napari-bvdm" in capsys.readouterr().err
    assert (other / "notes.txt").read_text() == "keep me"


def test_demo_help_is_short(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "--config" in out and "--overwrite" in out
