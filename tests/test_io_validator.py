"""The CTC validator: every broken variant of the rules table, agreement with py-ctcmetrics."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_bvdm.io.ctc_writer import export_ctc
from napari_bvdm.io.toy import toy_sequence
from napari_bvdm.io.validator import Violation, check_lineage, format_report, validate_ctc


def _toy(tmp_path, mode="RES"):
    image, labels, lineage = toy_sequence()
    export_ctc(tmp_path, image, labels, lineage, mode=mode, compression=None)
    return tmp_path / ("01_RES" if mode == "RES" else "01_GT")


def _txt(folder):
    return folder / "res_track.txt"


def _edit_txt(folder, old, new):
    p = _txt(folder)
    p.write_bytes(p.read_bytes().replace(old.encode(), new.encode()))


def _paint(folder, t, label, value=None, y=90, x=5, size=3):
    p = folder / f"mask{t:03d}.tif"
    a = tifffile.imread(p)
    if value is None:  # add a small square of `label`
        a[y : y + size, x : x + size] = label
    else:  # replace `label` by `value`
        a[a == label] = value
    tifffile.imwrite(p, a)


def _copy_label(folder, t_from, t_to, label):
    a = tifffile.imread(folder / f"mask{t_from:03d}.tif")
    b = tifffile.imread(folder / f"mask{t_to:03d}.tif")
    b[(a == label) & (b == 0)] = label
    tifffile.imwrite(folder / f"mask{t_to:03d}.tif", b)


def _b_after_e(f):
    _edit_txt(f, "3 0 2 0", "3 2 0 0")


def _e_too_late(f):
    _edit_txt(f, "1 0 4 0", "1 0 5 0")


def _gap(f):
    _paint(f, 2, 1, value=0)


def _no_parent(f):
    _edit_txt(f, "4 3 4 3", "4 3 4 42")


def _daughter_when_parent_ends(f):
    _copy_label(f, 2, 3, 3)
    _edit_txt(f, "3 0 2 0", "3 0 3 0")


def _duplicate(f):
    _txt(f).write_text(_txt(f).read_text() + "2 0 4 0\n")


def _undeclared(f):
    _paint(f, 1, 9)


def _after_end(f):
    _copy_label(f, 2, 4, 3)


def _uint8(f):
    for p in f.glob("mask*.tif"):
        tifffile.imwrite(p, tifffile.imread(p).astype(np.uint8))


def _size(f):
    p = f / "mask001.tif"
    tifffile.imwrite(p, tifffile.imread(p)[:, :120])


# variant -> (our rule, what py-ctcmetrics 1.3.3 does: "invalid", "valid" (misses it), "crash")
VARIANTS = {
    "duplicate L": (_duplicate, 1, "invalid"),
    "B > E": (_b_after_e, 2, "invalid"),
    "E beyond the last frame": (_e_too_late, 3, "valid"),
    "gap inside B..E": (_gap, 4, "invalid"),
    "parent not in txt": (_no_parent, 5, "crash"),
    "daughter starts when parent ends": (_daughter_when_parent_ends, 6, "invalid"),
    "label not declared": (_undeclared, 7, "invalid"),
    "label after its E": (_after_end, 8, "invalid"),
    "uint8 masks": (_uint8, 9, "valid"),
    "mask of another size": (_size, 10, "valid"),
}


_CTC_SCRIPT = """
import sys
from ctc_metrics import validate_sequence
for folder in sys.argv[1:]:
    try:
        verdict = int(validate_sequence(folder, threads=1)["Valid"])
    except Exception:
        verdict = "crash"
    print("\\nVERDICT", verdict, flush=True)
"""


def _ctc_verdicts(folders):
    """py-ctcmetrics' verdict per folder (1, 0 or 'crash'), in one subprocess (it prints)."""
    p = subprocess.run([sys.executable, "-c", _CTC_SCRIPT, *map(str, folders)],
                       capture_output=True, text=True, timeout=300)
    out = [line.split()[1] for line in p.stdout.splitlines() if line.startswith("VERDICT")]
    assert len(out) == len(folders), p.stderr[-2000:]
    return [v if v == "crash" else int(v) for v in out]


def test_clean_toy_is_valid(tmp_path):
    res = _toy(tmp_path)
    assert validate_ctc(res) == []
    assert validate_ctc(tmp_path) == []


@pytest.mark.parametrize("name", list(VARIANTS))
def test_broken_variant_rejected_with_its_rule(tmp_path, name):
    breaker, rule, ctc_verdict = VARIANTS[name]
    res = _toy(tmp_path)
    breaker(res)
    found = validate_ctc(res)
    assert rule in {v.rule for v in found}, (name, [str(v) for v in found])
    hit = next(v for v in found if v.rule == rule)
    assert f"rule {rule}" in str(hit)
    if rule in (1, 2, 3, 4, 5, 6, 7, 8):
        assert hit.label is not None
    if rule in (4, 6, 7, 8, 9, 10):
        assert hit.frame is not None


def test_agreement_with_py_ctcmetrics(tmp_path):
    """Where py-ctcmetrics detects a variant, we do too; its documented misses are still ours."""
    pytest.importorskip("ctc_metrics")
    folders, ours = [_toy(tmp_path / "clean")], [validate_ctc(tmp_path / "clean" / "01_RES")]
    for i, (breaker, _rule, _v) in enumerate(VARIANTS.values()):
        folders.append(_toy(tmp_path / str(i)))
        breaker(folders[-1])
        ours.append(validate_ctc(folders[-1]))
    theirs = _ctc_verdicts(folders)
    assert theirs[0] == 1 and ours[0] == []
    for name, (_b, rule, expected), found, verdict in zip(
            VARIANTS, VARIANTS.values(), ours[1:], theirs[1:], strict=True):
        assert rule in {v.rule for v in found}, name
        if expected is not None:
            assert verdict == {"invalid": 0, "valid": 1, "crash": "crash"}[expected], name
        if verdict == 0:
            assert found, name


def test_gt_folder_rules_and_naming(tmp_path):
    gt = _toy(tmp_path, mode="GT")
    assert validate_ctc(gt) == [] and validate_ctc(tmp_path / "01") == []
    # a TRA mask missing, names with 4 digits for 5 frames, tabs, CRLF, unsorted
    os.rename(gt / "TRA/man_track003.tif", gt / "TRA/man_track0003.tif")
    os.remove(gt / "TRA/man_track001.tif")
    txt = gt / "TRA/man_track.txt"
    txt.write_bytes(b"2 0 4 0\r\n1\t0 4 0\r\n3 0 2 0\r\n4 3 4 3\r\n5 3 4 3\r\n")
    msgs = [str(v) for v in validate_ctc(tmp_path)]
    assert any("[naming]" in m and "man_trackTTT" in m for m in msgs), msgs
    assert any("[naming]" in m and "frame(s) [1]" in m for m in msgs), msgs
    assert any("CR" in m for m in msgs) and any("single spaces" in m for m in msgs)
    assert any("not sorted" in m for m in msgs)


def test_real_gt_is_valid(gowt1, msc, simplus):
    for ds in (gowt1, msc, simplus):
        assert validate_ctc(ds) == [], ds


def test_eroded_simplus_loses_a_nucleus(simplus, tmp_path):
    """ctc-format.md: 2 px erosion of SIM+ makes label 33 vanish at t = 37 first (rule 4)."""
    from scipy import ndimage

    from napari_bvdm.io.lineage import frame_label_sets
    from napari_bvdm.io.readers import read_video

    v = read_video(simplus / "01", lazy=True, check=False)
    tra = v.labels["TRA"]
    per = []
    for t in range(v.n_frames):
        a = tra[t]
        per.append(frame_label_sets([np.where(ndimage.grey_erosion(a, size=(5, 5)) == a, a, 0)])[0])
    found = check_lineage(v.lineage, per, v.n_frames)
    assert found and {v_.rule for v_ in found} == {4}  # small nuclei vanish: gaps only
    first = min(found, key=lambda v_: v_.frame)
    assert (first.label, first.frame) == (33, 37)


def test_report_and_violation_text():
    v = Violation(4, "track 1 (B=0, E=4) is missing from the image at frame 2", label=1, frame=2)
    assert str(v).startswith("[rule 4]")
    assert "valid CTC data" in format_report([], "x")
    assert "1 problem" in format_report([v], "x")


def test_missing_and_non_ctc_paths(tmp_path):
    assert validate_ctc(tmp_path / "nope")[0].rule == "naming"
    assert "no CTC sequence" in validate_ctc(tmp_path)[0].message


def test_a_malformed_track_line_is_reported_once(tmp_path):
    import numpy as np
    import tifffile

    from napari_bvdm.io.validator import validate_ctc

    (tmp_path / "01").mkdir()
    (tmp_path / "01_GT" / "TRA").mkdir(parents=True)
    for t in range(2):
        tifffile.imwrite(tmp_path / "01" / f"t{t:03d}.tif", np.zeros((16, 16), np.uint8))
        lab = np.zeros((16, 16), np.uint16)
        lab[2:6, 2:6], lab[9:13, 9:13] = 1, 2
        tifffile.imwrite(tmp_path / "01_GT" / "TRA" / f"man_track{t:03d}.tif", lab)
    (tmp_path / "01_GT" / "TRA" / "man_track.txt").write_text("1 0 1 0\n2 0 1 0 junk\n")
    lines = [v.message for v in validate_ctc(tmp_path) if "line 2" in v.message]
    assert len(lines) == 1, lines
