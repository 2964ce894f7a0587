"""Lineage tools: track file parsing/formatting, lineage from labels (gaps split), napari tracks."""

from __future__ import annotations

import numpy as np
import pytest

from napari_bvdm.io.ctc_writer import export_ctc
from napari_bvdm.io.lineage import (
    clip_lineage,
    format_track_file,
    lineage_from_labels,
    lineage_to_graph,
    parse_track_file,
    tracks_from_labels,
)
from napari_bvdm.io.readers import read_video
from napari_bvdm.io.toy import TOY_LINEAGE, toy_sequence
from napari_bvdm.io.validator import validate_ctc
from napari_bvdm.io.video import InputError


def test_parse_and_format_round_trip():
    text = "2 0 4 0\n1\t0  4 0\r\n\n10 3 4 2\n"
    lin = parse_track_file(text)
    assert lin.dtype == np.int64 and lin.tolist() == [[1, 0, 4, 0], [2, 0, 4, 0], [10, 3, 4, 2]]
    assert format_track_file(lin) == "1 0 4 0\n2 0 4 0\n10 3 4 2\n"
    assert parse_track_file("").shape == (0, 4)


@pytest.mark.parametrize("text, match", [("1 0 4\n", "line 1"), ("1 0 4 0\n2 a 3 0\n", "line 2"),
                                         ("1 0 -4 0\n", "line 1"), ("0 0 4 0\n", "background")])
def test_malformed_track_file(text, match):
    with pytest.raises(InputError, match=match):
        parse_track_file(text)


def test_toy_with_parents_gives_the_documented_lineage():
    _, labels, _ = toy_sequence()
    relabelled, lin = lineage_from_labels(labels, parents={4: 3, 5: 3})
    np.testing.assert_array_equal(lin, TOY_LINEAGE)
    np.testing.assert_array_equal(relabelled, labels)


def test_gap_splits_the_track(tmp_path):
    image, labels, _ = toy_sequence()
    labels[2][labels[2] == 2] = 0  # cell 2 missed at t = 2 (ctc-format.md §6.1)
    labels[4][labels[4] == 2] = 0
    labels[3][labels[3] == 2] = 0
    labels[3][40:45, 60:65] = 2  # ... comes back at t = 3 elsewhere, disappears at t = 4
    relabelled, lin = lineage_from_labels(labels, parents={4: 3, 5: 3})
    assert lin.tolist() == [[1, 0, 4, 0], [2, 0, 1, 0], [3, 0, 2, 0], [4, 3, 4, 3], [5, 3, 4, 3],
                            [6, 3, 3, 2]]
    assert relabelled.dtype == np.uint16
    assert (relabelled[3] == 6).sum() == 25 and not (relabelled[3] == 2).any()
    np.testing.assert_array_equal(relabelled[:2], labels[:2])
    export_ctc(tmp_path, image, relabelled, lin)
    assert validate_ctc(tmp_path) == []


def test_several_gaps_get_several_labels():
    labels = np.zeros((7, 4, 4), np.uint8)
    for t in (0, 1, 3, 6):
        labels[t, 1, 1] = 5
    relabelled, lin = lineage_from_labels(labels)
    assert lin.tolist() == [[5, 0, 1, 0], [6, 3, 3, 5], [7, 6, 6, 6]]
    assert relabelled[:, 1, 1].tolist() == [5, 5, 0, 6, 0, 0, 7]


def test_real_gt_lineage_is_recovered(simplus, gowt1):
    for ds in (simplus, gowt1):
        v = read_video(ds / "01", lazy=True, check=False).frames(0, 30)
        parents = {int(r[0]): int(r[3]) for r in v.lineage if r[3]}
        relabelled, lin = lineage_from_labels(v.labels["TRA"], parents)
        np.testing.assert_array_equal(lin, v.lineage)


def test_bad_labels():
    with pytest.raises(InputError, match="integers"):
        lineage_from_labels(np.zeros((2, 3, 3), np.float32))
    with pytest.raises(InputError, match="negative"):
        lineage_from_labels(-np.ones((2, 3, 3), np.int16))
    _, labels, _ = toy_sequence()
    with pytest.raises(InputError, match="must start after its mother ends"):
        lineage_from_labels(labels, parents={4: 1})


def test_clip_and_graph_and_tracks():
    assert clip_lineage(TOY_LINEAGE, 3, 5).tolist() == [[1, 0, 1, 0], [2, 0, 1, 0], [4, 0, 1, 0],
                                                        [5, 0, 1, 0]]
    assert clip_lineage(TOY_LINEAGE, 2, 5).tolist()[2:] == [[3, 0, 0, 0], [4, 1, 2, 3],
                                                            [5, 1, 2, 3]]
    assert lineage_to_graph(TOY_LINEAGE) == {4: [3], 5: [3]}
    _, labels, _ = toy_sequence()
    data, graph = tracks_from_labels(labels, TOY_LINEAGE)
    assert data.shape == (17, 4) and graph == {4: [3], 5: [3]}
    first = data[(data[:, 0] == 1) & (data[:, 1] == 0)][0]
    np.testing.assert_allclose(first[2:], [25, 20])
