"""CTC export: real GT round trips, py-ctcmetrics scores, atomicity, streaming, bad input."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import tifffile

from napari_bvdm.io.ctc_writer import CTCSequenceWriter, ExportError, export_ctc, export_video
from napari_bvdm.io.lineage import clip_lineage, write_track_file
from napari_bvdm.io.readers import read_video
from napari_bvdm.io.toy import toy_sequence
from napari_bvdm.io.validator import validate_ctc
from napari_bvdm.runtime.progress import Cancelled, CancelToken, run_job

N_EVAL = 4  # frames given to py-ctcmetrics (~0.5 s per megapixel-frame)


@pytest.mark.parametrize(
    "name, window",
    # GOWT1 10..30 holds the division of 16 (daughters at 17 and, after a gap, 21);
    # the full 92-frame round trip is in benchmarks/bench_io.py
    [("Fluo-N2DH-GOWT1", (10, 30)), ("Fluo-C2DL-MSC", (0, 16)), ("Fluo-N2DH-SIM+", (20, 40))],
)
def test_real_gt_round_trip(name, window, tmp_path):
    from conftest import data_path

    src = data_path(name, "01")
    v = read_video(src, lazy=True, check=False).frames(*window)
    assert (v.lineage[:, 3] > 0).any() or name == "Fluo-C2DL-MSC"
    out = run_job(export_video(tmp_path / "DS", v))
    assert validate_ctc(out) == []
    w = read_video(out, lazy=True)
    assert w.seg_frames == v.seg_frames and set(w.labels) == set(v.labels)
    np.testing.assert_array_equal(w.lineage, v.lineage)
    assert len(w.seg_frames) > 0
    for t in range(v.n_frames):
        np.testing.assert_array_equal(w.image[t], v.image[t])
        for k in v.labels:
            np.testing.assert_array_equal(w.labels[k][t], v.labels[k][t])
    txt = (out / "01_GT" / "TRA" / "man_track.txt").read_bytes()
    assert b"\r" not in txt and b"\t" not in txt
    assert sorted(p.name for p in (out / "01_GT" / "TRA").iterdir())[0] == "man_track.txt"
    assert (out / "01_GT" / "TRA" / "man_track000.tif").exists()


def _gt_window(src_ds, dst, n):
    """Independent GT of the first n frames: links to the original files + clipped man_track.txt."""
    for sub in ("TRA", "SEG"):
        (dst / sub).mkdir(parents=True)
        for p in sorted((src_ds / "01_GT" / sub).glob("*.tif")):
            if int(p.stem[-3:]) < n:
                os.symlink(p, dst / sub / p.name)
    lin = np.loadtxt(src_ds / "01_GT" / "TRA" / "man_track.txt", dtype=np.int64, ndmin=2)
    write_track_file(dst / "TRA" / "man_track.txt", clip_lineage(lin, 0, n))


@pytest.mark.parametrize(
    "name, seg_identical",
    [("Fluo-N2DH-SIM+", 1.0), ("Fluo-N2DH-GOWT1", None), ("Fluo-C2DL-MSC", None)],
)
def test_py_ctcmetrics_scores_our_export(name, seg_identical, tmp_path):
    """Our export of the real TRA GT, as a result, scores TRA = DET = 1 against the real GT.

    SEG is 1.0 where TRA = full masks (SIM+); for GOWT1/MSC the TRA markers are smaller than the
    SEG masks, so SEG must equal what py-ctcmetrics gives for the original files themselves.
    """
    from conftest import data_path

    ctc = pytest.importorskip("ctc_metrics")
    src = data_path(name)
    v = read_video(src / "01", lazy=True, check=False)
    gt = tmp_path / "01_GT"
    _gt_window(src, gt, N_EVAL)
    export_ctc(tmp_path, None, v.labels["TRA"][:N_EVAL], clip_lineage(v.lineage, 0, N_EVAL),
               mode="RES")
    assert validate_ctc(tmp_path / "01_RES", n_frames=N_EVAL) == []
    assert ctc.validate_sequence(str(tmp_path / "01_RES"), threads=1)["Valid"] == 1
    ours = ctc.evaluate_sequence(str(tmp_path / "01_RES"), str(gt), ["SEG", "TRA", "DET"], threads=1)
    assert ours["TRA"] == 1.0 and ours["DET"] == 1.0
    if seg_identical is not None:
        assert ours["SEG"] == seg_identical
    else:  # the original marker files presented as a result
        ref = tmp_path / "ref" / "01_RES"
        ref.mkdir(parents=True)
        for p in sorted((gt / "TRA").glob("man_track*.tif")):
            os.symlink(os.path.realpath(p), ref / f"mask{p.name[-7:]}")
        os.symlink(gt / "TRA" / "man_track.txt", ref / "res_track.txt")
        theirs = ctc.evaluate_sequence(str(ref), str(gt), ["SEG"], threads=1)
        assert 0 < ours["SEG"] < 1 and ours["SEG"] == pytest.approx(theirs["SEG"], abs=1e-12)


def test_toy_export_layout_and_default_lineage(tmp_path):
    image, labels, lineage = toy_sequence()
    export_ctc(tmp_path / "T", image, labels, lineage)
    assert sorted(os.listdir(tmp_path / "T")) == ["01", "01_GT"]
    assert sorted(os.listdir(tmp_path / "T" / "01"))[:2] == ["t000.tif", "t001.tif"]
    assert (tmp_path / "T/01_GT/TRA/man_track.txt").read_text() == (
        "1 0 4 0\n2 0 4 0\n3 0 2 0\n4 3 4 3\n5 3 4 3\n")
    seg = tifffile.imread(tmp_path / "T/01_GT/SEG/man_seg004.tif")
    assert seg.dtype == np.uint16 and np.array_equal(seg, labels[4])
    assert tifffile.imread(tmp_path / "T/01/t002.tif").dtype == np.uint16
    # without a lineage: one parent-less track per label, spans from the labels
    export_ctc(tmp_path / "U", image, labels.astype(np.int32), seg="none")
    assert (tmp_path / "U/01_GT/TRA/man_track.txt").read_text().splitlines()[3] == "4 3 4 0"
    assert not (tmp_path / "U/01_GT/SEG").exists()
    assert validate_ctc(tmp_path / "U") == []


def test_streaming_writer_four_digits_for_1000_frames(tmp_path):
    lab = np.zeros((4, 5), np.uint16)
    lab[1, 1] = 7
    with CTCSequenceWriter(tmp_path / "long", "02", seg=[0, 999]) as w:
        for t in range(1000):
            w.write_frame(t, np.full((4, 5), t % 256, np.uint8), lab)
        w.close()
    names = sorted(os.listdir(tmp_path / "long" / "02"))
    assert names[0] == "t0000.tif" and names[-1] == "t0999.tif" and len(names) == 1000
    assert sorted(os.listdir(tmp_path / "long/02_GT/SEG")) == ["man_seg0000.tif", "man_seg0999.tif"]
    assert (tmp_path / "long/02_GT/TRA/man_track.txt").read_text() == "7 0 999 0\n"
    assert validate_ctc(tmp_path / "long") == []


def test_existing_target_is_kept_unless_overwrite(tmp_path):
    image, labels, lineage = toy_sequence()
    export_ctc(tmp_path, image, labels, lineage)
    before = (tmp_path / "01/t000.tif").read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        export_ctc(tmp_path, image[::-1].copy(), labels, lineage)
    assert (tmp_path / "01/t000.tif").read_bytes() == before
    export_ctc(tmp_path, image, labels, lineage, seq="02")  # a second sequence beside it
    export_ctc(tmp_path, image + 1, labels, lineage, overwrite=True)
    assert (tmp_path / "01/t000.tif").read_bytes() != before
    assert sorted(os.listdir(tmp_path)) == ["01", "01_GT", "02", "02_GT"]


def test_invalid_lineage_writes_nothing(tmp_path):
    image, labels, lineage = toy_sequence()
    bad = lineage.copy()
    bad[3, 1] = 2  # daughter starts while its mother still lives
    with pytest.raises(ExportError, match=r"rule 6") as e:
        export_ctc(tmp_path / "A", image, labels, bad)
    assert {v.rule for v in e.value.violations} >= {6}
    gap = labels.copy()
    gap[2][gap[2] == 1] = 0
    with pytest.raises(ExportError, match="lineage_from_labels"):
        export_ctc(tmp_path / "A", image, gap)
    assert os.listdir(tmp_path) == []


def test_cancel_and_close_leave_nothing(tmp_path):
    from napari_bvdm.io.ctc_writer import export_ctc_job

    image, labels, lineage = toy_sequence()
    job = export_ctc_job(tmp_path / "A", image, labels, lineage)
    next(job), next(job)
    job.close()
    assert os.listdir(tmp_path) == []
    token = CancelToken()
    job = export_ctc_job(tmp_path / "A", image, labels, lineage, cancel=token)
    next(job)
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(job)
    assert os.listdir(tmp_path) == []
    with pytest.raises(RuntimeError):
        with CTCSequenceWriter(tmp_path / "B") as w:
            w.write_frame(0, image[0], labels[0])
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"labels": "float"}, "non-integer"),
        ({"labels": "negative"}, "negative"),
        ({"labels": "big"}, "65535"),
        ({"image": "shape"}, "differ in shape"),
    ],
)
def test_bad_export_input(tmp_path, kwargs, match):
    from napari_bvdm.io.video import InputError

    image, labels, lineage = toy_sequence()
    if kwargs.get("labels") == "float":
        labels = labels.astype(np.float32) + 0.5
    elif kwargs.get("labels") == "negative":
        labels = labels.astype(np.int32) - 1
    elif kwargs.get("labels") == "big":
        labels = labels.astype(np.int32) * 40000
    if kwargs.get("image") == "shape":
        image = image[:, :50]
    with pytest.raises(InputError, match=match):
        export_ctc(tmp_path / "A", image, labels, None)
    assert os.listdir(tmp_path) == []


def test_no_write_permission(tmp_path, monkeypatch):
    image, labels, lineage = toy_sequence()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:  # root ignores folder permissions: make the folder creation fail as it would
        import napari_bvdm.io.ctc_writer as cw

        def denied(*a, **k):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(cw.tempfile, "mkdtemp", denied)
    try:
        with pytest.raises(PermissionError, match="cannot write to .*ro: permission denied"):
            export_ctc(ro / "A", image, labels, lineage)
        assert os.listdir(ro) == []
    finally:
        ro.chmod(stat.S_IRWXU)


def test_name_digits_grow_beyond_ten_thousand_frames():
    from napari_bvdm.io.validator import name_digits

    assert [name_digits(n) for n in (1, 999, 1000, 10000, 10001, 100000, 100001)] == [3, 3, 4, 4, 5, 5, 6]
