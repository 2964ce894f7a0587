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
    eager = read_video(msc / "01")
    lazy = read_video(msc / "01", lazy=True)
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
