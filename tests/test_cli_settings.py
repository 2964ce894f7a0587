"""Every subcommand accepts the run-settings file (`--settings`); inspect/validate read their own sections."""

from __future__ import annotations

import argparse
import json

import numpy as np

from napari_bvdm.cli import _command_modules, build_parser, main
from napari_bvdm.io.ctc_writer import export_ctc


def test_every_subcommand_takes_settings_or_a_config():
    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for mod in _command_modules():
        opts = {o for a in subs[mod.NAME]._actions for o in a.option_strings}
        assert "--settings" in opts or "--config" in opts, mod.NAME


def test_generate_and_evaluate_keep_few_options():
    """At most 15 options besides --help and --config, each explained in plain words."""
    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name in ("generate", "evaluate"):
        shown = [a for a in subs[name]._actions if a.help != argparse.SUPPRESS
                 and not {"-h", "--config"} & set(a.option_strings)]
        assert len(shown) <= 15, (name, [a.option_strings for a in shown])
        assert all(a.help for a in shown)


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


def test_generate_reads_the_config_section_of_a_gui_settings_file(tmp_path):
    """A run-settings file saved by the GUI holds the run's configuration (`config`): `bvdm generate --config`
    takes it; the command line still wins."""
    import tifffile

    from napari_bvdm.widgets._recipe import GenerateParams

    params = GenerateParams(painter="classical", frames=3, height=64, width=80, cells=2, seed=5,
                            refresh_strength=30)
    settings = tmp_path / "run.json"
    settings.write_text(json.dumps({"generate": params.to_dict(), "config": params.to_config().to_dict()}))
    out = tmp_path / "ds"
    assert main(["generate", "-o", str(out), "--config", str(settings), "--videos", "1", "--quiet"]) == 0
    frames = sorted((out / "01").glob("t*.tif"))
    assert len(frames) == 3 and tifffile.imread(frames[0]).shape == (64, 80)
    run = json.loads((out / "synthesis.json").read_text())["run"]
    assert run["engine"]["tf_non0"] == 30 and run["config"]["seed"] == 5 and run["painter"] == "ClassicalPainter"
    out2 = tmp_path / "ds2"
    assert main(["generate", "-o", str(out2), "--config", str(settings), "--videos", "1", "--quiet",
                 "--frames", "2"]) == 0
    assert len(list((out2 / "01").glob("t*.tif"))) == 2
