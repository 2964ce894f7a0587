"""Tracked labels are told apart from labels numbered frame by frame (any segmenter's output)."""

from __future__ import annotations

import numpy as np

from napari_bvdm.io.linking import check_linked, relabel_frames_by_tracks
from napari_bvdm.io.readers import read_ctc


def renumber_per_frame(labels: np.ndarray) -> np.ndarray:
    """What a segmenter gives: the objects of each frame numbered 1..N in scan order."""
    out = np.zeros_like(labels)
    for t in range(labels.shape[0]):
        frame = labels[t]
        ids, first = np.unique(frame.ravel(), return_index=True)
        order = ids[np.argsort(first)]
        order = order[order > 0]
        lut = np.zeros(int(frame.max()) + 1, np.int64)
        lut[order] = np.arange(1, len(order) + 1)
        out[t] = lut[frame]
    return out


def test_tracks_are_linked_and_per_frame_numbering_is_not(gowt1, simplus, msc):
    for root in (gowt1, simplus, msc):
        tra = np.asarray(read_ctc(root / "01").labels["TRA"])
        tracked = check_linked(tra)
        assert tracked.linked and tracked.share >= 0.99, (root.name, tracked)
        per_frame = check_linked(renumber_per_frame(tra))
        assert not per_frame.linked, (root.name, per_frame)
        assert "numbered frame by frame" in per_frame.describe()


def test_a_segmentation_per_frame_is_not_linked(hela):
    v = read_ctc(hela / "02")
    check = check_linked(np.asarray(v.labels["ERR_SEG"]))
    assert not check.linked and check.compared > 100


def test_relabel_frames_by_tracks_gives_each_object_its_track_id():
    lab = np.zeros((2, 8, 8), np.uint16)
    lab[0, 1:3, 1:3], lab[0, 5:7, 5:7] = 1, 2
    lab[1, 5:7, 5:7], lab[1, 1:3, 1:3] = 1, 2  # renumbered in the second frame
    out = relabel_frames_by_tracks(lab, [np.array([10, 20]), np.array([20, 10])])
    assert out[0, 1, 1] == out[1, 1, 1] == 10 and out[0, 5, 5] == out[1, 5, 5] == 20
    assert (out[lab == 0] == 0).all()
