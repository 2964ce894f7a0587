"""Readers: real CTC sequences, TIFF stacks, frame folders, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_bvdm.io.lazy import FrameStack
from napari_bvdm.io.readers import read_video
from napari_bvdm.io.video import InputError


def test_gowt1_sequence_folder(gowt1):
    v = read_video(gowt1 / "01")
    assert v.image.shape == (92, 1024, 1024) and v.image.dtype == np.uint8
    assert set(v.labels) == {"TRA", "SEG"}
    assert v.labels["TRA"].dtype == np.uint16
    assert len(v.seg_frames) == 30 and v.seg_frames[0] == 2
    assert v.labels["SEG"][0].max() == 0 and v.labels["SEG"][2].max() > 0
    assert len(v.lineage) == 27 and (v.lineage[:, 3] > 0).sum() == 4
    # GOWT1 GT: daughter 18 starts 5 frames after its mother 16 ends
    assert [16, 0, 16, 0] in v.lineage.tolist() and [18, 21, 91, 16] in v.lineage.tolist()
    ref = tifffile.imread(gowt1 / "01" / "t017.tif")
    np.testing.assert_array_equal(v.image[17], ref)


def test_dataset_folder_and_gt_folder_pick_the_sequence(simplus):
    a = read_video(simplus, lazy=True)
    b = read_video(simplus / "01_GT", lazy=True)
    assert a.source == b.source and a.meta["sequence"] == "01"
    assert a.n_frames == 65 and len(a.seg_frames) == 65 and len(a.lineage) == 95


def test_lazy_matches_eager_and_keeps_dtype(msc):
    eager = read_video(msc / "01", check=False)
    lazy = read_video(msc / "01", lazy=True, check=False)
    assert isinstance(lazy.image, FrameStack) and lazy.image.dtype == np.uint16
    for t in (0, 23, 47):
        np.testing.assert_array_equal(lazy.image[t], eager.image[t])
        np.testing.assert_array_equal(lazy.labels["SEG"][t], eager.labels["SEG"][t])
    np.testing.assert_array_equal(lazy.image[5:8, 10:20, ::3], eager.image[5:8, 10:20, ::3])
    np.testing.assert_array_equal(np.asarray(lazy.labels["TRA"]), eager.labels["TRA"])


def test_hela_err_seg(hela):
    v = read_video(hela)
    assert v.image.shape == (20, 700, 1100) and v.image.dtype == np.uint16
    assert set(v.labels) == {"ERR_SEG"} and v.lineage is None
    assert v.image.min() > 30000


def test_multipage_and_single_tiff(tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 4000, (5, 24, 32)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", stack)
    tifffile.imwrite(tmp_path / "c.tif", stack, compression="zlib")
    tifffile.imwrite(tmp_path / "one.tif", stack[0])
    for lazy in (False, True):
        np.testing.assert_array_equal(np.asarray(read_video(tmp_path / "s.tif", lazy=lazy).image),
                                      stack)
        v = read_video(tmp_path / "c.tif", lazy=lazy)
        np.testing.assert_array_equal(v.image[2], stack[2])
        one = read_video(tmp_path / "one.tif", lazy=lazy)
        assert one.image.shape == (1, 24, 32)
        np.testing.assert_array_equal(np.asarray(one.image)[0], stack[0])


def test_frame_folder_sorted_by_number(tmp_path):
    frames = [np.full((8, 9), i, np.uint8) for i in range(12)]
    for i, f in enumerate(frames):
        tifffile.imwrite(tmp_path / f"frame_{i}.tif", f)  # frame_10 sorts before frame_2 by name
    v = read_video(tmp_path)
    assert v.meta["format"] == "frames"
    assert [int(v.image[t, 0, 0]) for t in range(12)] == list(range(12))
    named_like_ctc = tmp_path / "01"  # a folder named like a CTC sequence, holding plain frames
    named_like_ctc.mkdir()
    for i in range(3):
        tifffile.imwrite(named_like_ctc / f"img{i}.tif", frames[i])
    w = read_video(named_like_ctc)
    assert w.meta["format"] == "frames" and w.n_frames == 3


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: tifffile.imwrite(d / "rgb.tif", np.zeros((16, 16, 3), np.uint8), photometric="rgb"),
         "colour samples"),
        (lambda d: tifffile.imwrite(d / "planes.tif", np.zeros((3, 16, 16), np.uint8)),
         "photometric='minisblack'"),
        (lambda d: tifffile.imwrite(d / "ch.tif", np.zeros((4, 2, 16, 16), np.uint16),
                                    metadata={"axes": "TCYX"}), "channels on axis 1"),
        (lambda d: tifffile.imwrite(d / "4d.tif", np.zeros((3, 4, 16, 16), np.uint16),
                                    metadata={"axes": "TZYX"}), "4D"),
    ],
)
def test_bad_tiffs(tmp_path, make, match):
    make(tmp_path)
    (f,) = list(tmp_path.iterdir())
    with pytest.raises(InputError, match=match):
        read_video(f)


def test_bad_folders(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_video(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty"):
        read_video(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    tifffile.imwrite(mixed / "t0.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(mixed / "t1.tif", np.zeros((8, 9), np.uint8))
    with pytest.raises(InputError, match="differ in size"):
        read_video(mixed)


def _toy_ctc(tmp_path):
    from napari_bvdm.io.ctc_writer import export_ctc
    from napari_bvdm.io.toy import toy_sequence

    image, labels, lineage = toy_sequence()
    export_ctc(tmp_path / "DS", image, labels, lineage, compression=None)
    return tmp_path / "DS"


@pytest.mark.parametrize(
    "text, match",
    [("1 0 4 0\n2 0 4\n", "line 2"), ("1 0 4 0\n2 0 x 0\n", "not four integers")],
)
def test_ctc_malformed_track_file(tmp_path, text, match):
    ds = _toy_ctc(tmp_path)
    (ds / "01_GT/TRA/man_track.txt").write_text(text)
    with pytest.raises(InputError, match=match):
        read_video(ds)


def test_ctc_track_file_disagrees_with_masks(tmp_path):
    ds = _toy_ctc(tmp_path)
    txt = ds / "01_GT/TRA/man_track.txt"
    txt.write_text(txt.read_text().replace("3 0 2 0\n", "3 0 3 0\n"))
    with pytest.raises(InputError, match=r"disagrees.*rule 4\] track 3 .* frame 3"):
        read_video(ds)
    assert read_video(ds, check=False).lineage[2].tolist() == [3, 0, 3, 0]  # opt-out for inspection
    (txt).unlink()
    with pytest.raises(InputError, match="no man_track.txt"):
        read_video(ds)


@pytest.mark.parametrize("dtype, value, match", [(np.float32, 1.5, "floats"), (np.int16, -3, "negative")])
def test_ctc_float_or_negative_labels(tmp_path, dtype, value, match):
    ds = _toy_ctc(tmp_path)
    p = ds / "01_GT/SEG/man_seg002.tif"
    tifffile.imwrite(p, np.where(tifffile.imread(p) > 0, value, 0).astype(dtype))
    if dtype == np.int16:  # one type for all frames; the negative values are in frame 2
        for q in (ds / "01_GT/SEG").glob("*.tif"):
            if q != p:
                tifffile.imwrite(q, tifffile.imread(q).astype(np.int16))
    with pytest.raises(InputError, match=match):
        read_video(ds)


def test_ctc_label_size_differs_from_frames(tmp_path):
    ds = _toy_ctc(tmp_path)
    for p in (ds / "01_GT/SEG").glob("*.tif"):
        tifffile.imwrite(p, tifffile.imread(p)[:, :100])
    with pytest.raises(InputError, match="must match the frames"):
        read_video(ds)


def test_framestack_indexing():
    calls = []

    def load(t):
        calls.append(t)
        return np.full((3, 4), t, np.int16)

    s = FrameStack(load, 6, (3, 4), np.int16, present=[0, 2, 3, 5], cache_size=2)
    assert s.shape == (6, 3, 4) and s.ndim == 3 and len(s) == 6 and s.dtype == np.int16
    assert s[1].max() == 0 and s[-1][0, 0] == 5 and s[2, 1, 1] == 2
    assert s[::2, 0, 0].tolist() == [0, 2, 0] and s[[5, 3], 0, 0].tolist() == [5, 3]
    assert s[..., 0].shape == (6, 3) and s[np.int64(3)].shape == (3, 4)
    assert np.asarray(s)[:, 0, 0].tolist() == [0, 0, 2, 3, 0, 5]
    assert s.max() == 5 and s.min() == 0
    with pytest.raises(IndexError):
        s[6]
    with pytest.raises(ValueError):  # frames are read-only views of the cache
        s[0][0, 0] = 1


def test_ctc_st_and_res_beside_the_gt(tmp_path):
    import shutil

    from napari_bvdm.io.ctc_writer import export_ctc
    from napari_bvdm.io.toy import TOY_LINEAGE, toy_sequence

    image, labels, lineage = toy_sequence()
    ds = tmp_path / "DS"
    export_ctc(ds, image, labels, lineage, seg=[1, 4])
    export_ctc(ds, None, labels, lineage, mode="RES")
    (ds / "01_ST").mkdir()
    shutil.copytree(ds / "01_GT" / "SEG", ds / "01_ST" / "SEG")
    v = read_video(ds / "01_RES")
    assert set(v.labels) == {"TRA", "SEG", "ST", "RES"}
    assert v.seg_frames == [1, 4] and v.meta["st_frames"] == [1, 4]
    np.testing.assert_array_equal(v.meta["res_lineage"], TOY_LINEAGE)
    np.testing.assert_array_equal(v.labels["RES"], labels)
    assert v.main_labels()[0] == "TRA"
    assert "labels ST" in v.describe()


def test_a_dataset_root_opens_every_sequence(tmp_path):
    """napari's reader on a dataset folder (e.g. one `bvdm generate` wrote, with synthesis.json and models/)
    gives the layers of every sequence, named by sequence."""
    import json

    from napari_bvdm._reader import get_reader
    from napari_bvdm.cli import main

    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"seed": 1, "shapes": {"frames": 3, "height": 48, "width": 48, "cells": 2},
                               "texture": {"model": "classical"}, "output": {"videos": 2}}))
    out = tmp_path / "ds"
    assert main(["generate", "--config", str(cfg), "-o", str(out), "--quiet"]) == 0
    reader = get_reader(str(out))
    assert reader is not None
    layers = reader(str(out))
    images = [meta["name"] for _d, meta, kind in layers if kind == "image"]
    assert images == ["ds 01", "ds 02"]
    assert {meta["name"] for _d, meta, kind in layers if kind == "labels"} >= {"ds 01 TRA", "ds 02 TRA"}
