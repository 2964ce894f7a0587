"""`bvdm demo`: the main job writes a valid CTC dataset and a preview; refuses to overwrite."""

from __future__ import annotations

import json

import pytest

from napari_bvdm.cli import main
from napari_bvdm.io.validator import validate_ctc


def test_demo_small(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--texture", "classical", "--frames", "4", "--videos", "1",
            "--size", "96", "128", "--cells", "3", "--quiet"]
    assert main(args) == 0
    assert validate_ctc(out) == []
    assert (out / "preview.png").stat().st_size > 0 and (out / "preview.gif").stat().st_size > 0
    assert len(list((out / "01").glob("t*.tif"))) == 4
    meta = json.loads((out / "synthesis.json").read_text())
    assert meta  # parameters recorded
    capsys.readouterr()
    # an existing target is never overwritten unless asked
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


def test_demo_help_lists_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "default: 30" in capsys.readouterr().out
