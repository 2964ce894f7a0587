"""Every subcommand accepts the run-settings file (`--settings`); inspect/validate read their own sections."""

from __future__ import annotations

import json

import numpy as np

from napari_bvdm.cli import _command_modules, build_parser, main
from napari_bvdm.io.ctc_writer import export_ctc


def test_every_subcommand_takes_settings():
    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for mod in _command_modules():
        assert any("--settings" in a.option_strings for a in subs[mod.NAME]._actions), mod.NAME


def _broken(tmp_path):
    img = np.zeros((3, 32, 32), np.uint16)
    lab = np.zeros((3, 32, 32), np.uint16)
    lab[:, 5:10, 5:10] = 1
    lab[:, 20:25, 20:25] = 2
    lab[:, 5:10, 20:25] = 3
    out = export_ctc(tmp_path / "ds", img, lab, np.array([[1, 0, 2, 0], [2, 0, 2, 0], [3, 0, 2, 0]]))
    (out / "01_GT" / "TRA" / "man_track.txt").write_text("1 0 2 0\n")  # labels 2 and 3 undeclared
    return out


def test_validate_reads_its_settings_section(tmp_path, capsys):
    ds = _broken(tmp_path)
    settings = tmp_path / "run.json"
    settings.write_text(json.dumps({"validate": {"max_problems": 1}}))
    assert main(["validate", str(ds), "--settings", str(settings)]) == 1
    out = capsys.readouterr().out
    assert "INVALID, 2 problem(s)" in out and "and 1 more" in out  # 2 problems, 1 printed
    assert main(["validate", str(ds), "--settings", str(settings), "--max-problems", "5"]) == 1
    assert "more" not in capsys.readouterr().out  # the command line wins
    settings.write_text(json.dumps({"validate": {"max_problemz": 1}}))
    assert main(["validate", str(ds), "--settings", str(settings)]) == 2
    assert "unknown key(s) ['max_problemz']" in capsys.readouterr().err


def test_inspect_reads_its_settings_section(tmp_path, capsys):
    ds = _broken(tmp_path)
    settings = tmp_path / "run.json"
    settings.write_text(json.dumps({"inspect": {"validate": True}}))
    main(["inspect", str(ds), "--settings", str(settings)])
    assert "rule 7" in capsys.readouterr().out.lower()
