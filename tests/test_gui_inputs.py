"""GUI tests of bad and unusual inputs, on a real viewer under Xvfb with real GOWT1 frames: each is
converted with a notice or refused with its reason, and nothing half-made looks finished."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

CROP = (slice(0, 4), slice(300, 556), slice(300, 556))


@pytest.fixture(autouse=True)
def _private_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_BVDM_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def crop(gowt1):
    import tifffile

    t, y, x = CROP
    frames = sorted((gowt1 / "01").glob("t*.tif"))[t]
    tra = sorted((gowt1 / "01_GT" / "TRA").glob("man_track*.tif"))[t]
    return (np.stack([tifffile.imread(f)[y, x] for f in frames]),
            np.stack([tifffile.imread(f)[y, x] for f in tra]).astype(np.uint16))


def _use(qtbot, viewer, image: str, labels: str | None = None, axis: int = 0):
    from napari_bvdm.widgets import DataWidget

    w = DataWidget(viewer)
    qtbot.addWidget(w)
    w.select(image, labels)
    if axis:
        w.axis_combo.setCurrentIndex(axis)
    w.use_layers()
    qtbot.waitUntil(lambda: not w.runner.running, timeout=120_000)
    return w, w.runner.last_outcome


def test_rgb_png_becomes_one_grey_frame_with_a_notice(make_napari_viewer, qtbot, crop, tmp_path):
    import imageio.v3 as iio

    frame = crop[0][0]
    rgb = np.stack([frame, frame // 2, frame // 3], axis=-1).astype(np.uint8)
    iio.imwrite(tmp_path / "cells.png", rgb)
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "cells.png"))
    name = viewer.layers[0].name
    w, out = _use(qtbot, viewer, name)
    assert out.status == "done", out
    assert w.state.video.shape == (1, 256, 256)  # never 256 frames of 256 x 3
    assert "converted to grey" in w.summary_label.text()


def test_z_stack_is_refused_with_the_reason(make_napari_viewer, qtbot, crop, tmp_path):
    import tifffile

    path = tmp_path / "zstack.tif"
    tifffile.imwrite(path, crop[0], imagej=True, metadata={"axes": "ZYX"})
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-bvdm")
    w, out = _use(qtbot, viewer, viewer.layers[0].name)
    assert w.axis_combo.currentIndex() == 1  # the file says z
    assert out.status == "error" and "z-stack of 4 slices" in str(out.error)
    assert "z-stack" in w.runner.status.text() and "InputError" not in w.runner.status.text()
    assert w.state.video is None
    # the user says the axis is time: accepted
    w.axis_combo.setCurrentIndex(0)
    w.use_layers()
    qtbot.waitUntil(lambda: not w.runner.running, timeout=120_000)
    assert w.runner.last_outcome.status == "done" and w.state.video.shape == (4, 256, 256)


def test_nan_pixels_are_refused_with_their_count(make_napari_viewer, qtbot, crop):
    image = crop[0].astype(np.float32)
    image[2, :3, :5] = np.nan
    image[3, 0, 0] = np.inf
    viewer = make_napari_viewer()
    viewer.add_image(image, name="float video")
    w, out = _use(qtbot, viewer, "float video")
    assert out.status == "error" and "holds 16 pixels that are not numbers" in str(out.error)
    assert "first in frame 3" in str(out.error) and w.state.video is None


def test_empty_labels_are_refused(make_napari_viewer, qtbot, crop):
    viewer = make_napari_viewer()
    viewer.add_image(crop[0], name="gowt1")
    viewer.add_labels(np.zeros_like(crop[1]), name="empty")
    w, out = _use(qtbot, viewer, "gowt1", "empty")
    assert out.status == "error" and "labels are empty" in str(out.error)
    assert w.state.video is None and not w.status_text.startswith("ready")


def test_labels_numbered_frame_by_frame_are_recognised(make_napari_viewer, qtbot, crop):
    from test_io_linking import renumber_per_frame

    viewer = make_napari_viewer()
    viewer.add_image(crop[0], name="gowt1")
    viewer.add_labels(renumber_per_frame(crop[1]), name="segmentation")
    viewer.add_labels(crop[1], name="tracks")
    w, out = _use(qtbot, viewer, "gowt1", "segmentation")
    assert out.status == "done" and not w.summary["labels_linked"]
    assert "numbered frame by frame" in w.summary_label.text()
    w.select("gowt1", "tracks")
    w.use_layers()
    qtbot.waitUntil(lambda: not w.runner.running, timeout=120_000)
    assert w.summary["labels_linked"]


def test_cancelled_generation_is_marked_partial(make_napari_viewer, qtbot):
    from napari_bvdm.flow import FlowModel
    from napari_bvdm.shapes import ShapeModel
    from napari_bvdm.widgets import GenerateWidget

    viewer = make_napari_viewer()
    gen = GenerateWidget(viewer)
    qtbot.addWidget(gen)
    gen.state.shape_model = ShapeModel.default()
    gen.state.flow_model = FlowModel.default()
    gen.form.set_values({"frames": 40, "height": 128, "width": 128, "cells": 2, "painter": "classical"})
    gen.generate()
    qtbot.waitUntil(lambda: "BVDM synthetic" in viewer.layers and gen._made >= 1, timeout=120_000)
    gen.runner.cancel()
    qtbot.waitUntil(lambda: not gen.runner.running, timeout=120_000)
    assert gen.runner.last_outcome.status == "cancelled"
    names = [layer.name for layer in viewer.layers]
    assert "BVDM synthetic" not in names
    partial = [n for n in names if n.startswith("BVDM synthetic") and "(cancelled: " in n]
    assert len(partial) == 2 and "of 40 frames" in partial[0], names
    assert "cancelled after" in gen.info_label.text()


def test_pixel_size_reaches_the_layers_the_model_and_the_export(make_napari_viewer, qtbot, crop, tmp_path):
    import tifffile

    from napari_bvdm.io.physical import read_physical
    from napari_bvdm.shapes import fit_shape_model
    from napari_bvdm.synthesis.export import read_record
    from napari_bvdm.widgets import ExportWidget
    from napari_bvdm.widgets._recipe import BUNDLED_DEFAULT

    path = tmp_path / "video.tif"
    tifffile.imwrite(path, crop[0], imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"axes": "TYX", "unit": "um", "finterval": 300})
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-bvdm")
    assert tuple(viewer.layers[0].scale) == pytest.approx((1, 0.65, 0.65))
    viewer.add_labels(crop[1], name="tracks", scale=viewer.layers[0].scale)
    w, out = _use(qtbot, viewer, viewer.layers[0].name, "tracks")
    assert out.status == "done" and w.pixel_size.value() == pytest.approx(0.65)
    assert w.state.video.meta["pixel_size"] == pytest.approx(0.65)
    from napari_bvdm.runtime.progress import run_job
    from napari_bvdm.shapes import FitConfig

    model = run_job(fit_shape_model(w.state.video, FitConfig(variance_share=0.95, n_points=32, max_shape_frames=2,
                                                              calibration_frames=0)))
    assert model.source["pixel_size"] == pytest.approx(0.65)
    from napari_bvdm.flow import FlowModel

    exp = ExportWidget(viewer)
    qtbot.addWidget(exp)
    for key, value in (("frames", 2), ("height", 64), ("width", 64), ("cells", 2), ("painter", "classical")):
        exp.settings.set("generate", key, value)
    exp.state.shape_model, exp.state.shape_path = model, ""
    exp.state.flow_model, exp.state.flow_path = FlowModel.default(), BUNDLED_DEFAULT
    exp.set_folder(tmp_path / "out")
    exp.n_videos.setValue(1)
    exp.export()
    qtbot.waitUntil(lambda: not exp.runner.running, timeout=300_000)
    assert exp.runner.last_outcome.status == "done", exp.runner.last_outcome
    assert read_physical(tmp_path / "out" / "01" / "t000.tif")["pixel_size"] == pytest.approx(0.65)
    assert read_physical(tmp_path / "out" / "01_GT" / "TRA" / "man_track000.tif")["pixel_size"] == pytest.approx(0.65)
    assert read_record(tmp_path / "out" / "synthesis.json")["videos"]["01"]["pixel_size"] == pytest.approx(0.65)
