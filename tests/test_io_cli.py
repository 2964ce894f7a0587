"""``bvdm inspect`` and ``bvdm validate`` through the real CLI entry point."""

from __future__ import annotations

import numpy as np

from napari_bvdm.cli import main
from napari_bvdm.io.ctc_writer import export_ctc
from napari_bvdm.io.toy import toy_sequence


def test_validate_exit_codes(tmp_path, capsys):
    image, labels, lineage = toy_sequence()
    export_ctc(tmp_path / "DS", image, labels, lineage)
    assert main(["validate", str(tmp_path / "DS")]) == 0
    assert "valid CTC data" in capsys.readouterr().out
    txt = tmp_path / "DS/01_GT/TRA/man_track.txt"
    txt.write_text(txt.read_text().replace("4 3 4 3", "4 2 4 3"))
    assert main(["validate", str(tmp_path / "DS" / "01_GT")]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "[rule 6]" in out and "track 4" in out


def test_inspect_ctc_and_tiff(tmp_path, capsys):
    import tifffile

    image, labels, lineage = toy_sequence()
    export_ctc(tmp_path / "DS", image, labels, lineage, seg=[1, 3])
    assert main(["inspect", str(tmp_path / "DS"), "--stats", "--validate"]) == 0
    out = capsys.readouterr().out
    assert "image: 5 frames, 96 x 128, dtype uint16" in out
    assert "annotated frames 2: [1, 3]" in out and "tracks: 5, with parent: 2" in out
    assert "TRA objects per frame: min 3, mean 3.4, max 4" in out and "validation: valid" in out
    tifffile.imwrite(tmp_path / "v.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack")
    assert main(["inspect", str(tmp_path / "v.tif")]) == 0
    assert "image: 3 frames, 8 x 8, dtype uint8" in capsys.readouterr().out


def test_inspect_bad_input_is_a_one_line_error(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_inspect_stats_names_the_frames_it_sampled(tmp_path, capsys):
    import numpy as np
    import tifffile

    from napari_bvdm.cli import main

    path = tmp_path / "v.tif"
    tifffile.imwrite(path, (np.arange(5 * 16 * 16) % 200).astype(np.uint8).reshape(5, 16, 16), photometric="minisblack")
    assert main(["inspect", str(path), "--stats"]) == 0
    assert "(5 frames)" in capsys.readouterr().out
