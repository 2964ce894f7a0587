"""The sample-data contribution: a synthetic demo video from the bundled default models."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def demo_layers():
    import torch

    from napari_bvdm._sample_data import finished_demo_layers

    n = torch.get_num_threads()
    torch.set_num_threads(1)  # CI's 2 cores are shared; oversubscribed torch threads are many times slower
    try:
        yield finished_demo_layers()
    finally:
        torch.set_num_threads(n)


@pytest.mark.slow
def test_demo_video_layers_are_synthetic_valid_and_seeded(demo_layers, tmp_path):
    from napari_bvdm._sample_data import demo_video
    from napari_bvdm.io.ctc_writer import export_video
    from napari_bvdm.io.validator import validate_ctc
    from napari_bvdm.io.video import Video
    from napari_bvdm.runtime.progress import run_job

    kinds = [k for _d, _m, k in demo_layers]
    assert kinds == ["image", "labels", "tracks"]
    (image, meta_i, _), (labels, meta_l, _), (tracks, meta_t, _) = demo_layers
    assert image.shape == labels.shape and image.shape[0] >= 10 and labels.dtype == np.uint16
    assert meta_l["metadata"]["synthetic"] is True
    assert len(np.unique(labels[0])) - 1 >= 4  # several cells in the first frame
    cells, background = image[labels > 0].mean(), image[labels == 0].mean()
    assert cells > background  # textured cells on a darker background
    assert set(np.unique(tracks[:, 0]).astype(int)) == set(np.unique(labels[labels > 0]).astype(int))
    # the annotations are a valid CTC ground truth
    lineage = meta_l["metadata"]["lineage"]
    run_job(export_video(tmp_path / "demo", Video(image=image, labels={"TRA": labels}, lineage=lineage),
                         seq="01"))
    assert validate_ctc(tmp_path / "demo") == []
    # same seed, same video
    first = run_job(demo_video(frames=2))
    again = run_job(demo_video(frames=2))
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])
    np.testing.assert_array_equal(first[1], labels[:2])


@pytest.mark.gui
def test_demo_video_opens_in_napari(demo_layers, make_napari_viewer):
    viewer = make_napari_viewer()
    for data, kwargs, kind in demo_layers:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image", "Labels", "Tracks"]


@pytest.mark.gui
def test_the_sample_menu_fills_the_layers_in_the_background(make_napari_viewer, qtbot):
    """In napari the sample returns at once with empty layers; the frames are painted into them off the GUI
    thread and the tracks layer follows."""
    import time

    viewer = make_napari_viewer()
    t0 = time.perf_counter()
    viewer.open_sample("napari-bvdm", "demo")
    returned = time.perf_counter() - t0
    assert returned < 5.0  # the painting itself takes several seconds more
    assert "BVDM demo labels" in viewer.layers
    qtbot.waitUntil(lambda: "BVDM demo tracks" in viewer.layers, timeout=300_000)
    image, labels = viewer.layers["BVDM demo"].data, viewer.layers["BVDM demo labels"].data
    assert all(frame.std() > 0 for frame in image) and all(frame.max() > 0 for frame in labels)
    assert image[labels > 0].mean() > image[labels == 0].mean()
    assert viewer.layers["BVDM demo labels"].metadata["lineage"] is not None
