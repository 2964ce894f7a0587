"""GUI tests of the napari workflow (real viewer under Xvfb, real GOWT1 crop, tiny models)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

CROP = (slice(0, 6), slice(300, 556), slice(300, 556))  # 6 frames, 256 x 256


@pytest.fixture(autouse=True)
def _private_settings(tmp_path, monkeypatch):
    # GUI settings go to a temporary folder, never to the developer's ~/.config
    monkeypatch.setenv("NAPARI_BVDM_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def gowt1_crop(gowt1):
    """A small real crop of GOWT1 01 (image + TRA labels), read with tifffile; never written to the repo."""
    import tifffile

    t, y, x = CROP
    frames = sorted((gowt1 / "01").glob("t*.tif"))[t]
    tra = sorted((gowt1 / "01_GT" / "TRA").glob("man_track*.tif"))[t]
    image = np.stack([tifffile.imread(f)[y, x] for f in frames])
    labels = np.stack([tifffile.imread(f)[y, x] for f in tra]).astype(np.uint16)
    return image, labels


def wait_job(qtbot, widget, timeout=30_000):
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=timeout)
    return widget.runner.last_outcome


def test_data_step_summary_and_segmentation(make_napari_viewer, qtbot, gowt1_crop):
    from napari_bvdm.widgets import DataWidget

    image, labels = gowt1_crop
    viewer = make_napari_viewer()
    viewer.add_image(image, name="gowt1")
    w = DataWidget(viewer)
    qtbot.addWidget(w)
    assert w.image_combo.currentText() == "gowt1"
    assert w.labels_combo.currentText() == "(none)"
    assert not w.seg_box.isHidden()  # no labels: segmentation offered
    w.segment()
    out = wait_job(qtbot, w)
    assert out.status == "done", out
    seg = viewer.layers["gowt1 segmentation"].data
    assert seg.shape == image.shape and seg.dtype == np.uint16
    assert 3 <= len(np.unique(seg[0])) - 1 <= 40  # a few nuclei per 256 x 256 crop
    viewer.add_labels(labels, name="TRA")
    w.select("gowt1", "TRA")
    w.use_layers()
    assert wait_job(qtbot, w).status == "done"
    assert w.state.video is not None and "labels" in w.state.video.labels
    s = w.summary
    assert s["frames"] == 6 and s["size"] == (256, 256)
    assert s["cells_per_frame"][0] >= 1 and s["labels_linked"]
    assert "ready" in w.status_text
