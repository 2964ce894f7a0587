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


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    # the training configs below ask for one thread (CI has 2 shared cores); restore afterwards
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


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


#: generous: the jobs take seconds on an idle CPU, but CI machines may be loaded many times over
JOB_TIMEOUT_MS = 600_000


def wait_job(qtbot, widget, timeout=JOB_TIMEOUT_MS):
    """Wait for the widget's job to end (a condition, never a fixed sleep); returns its outcome."""
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


@pytest.fixture
def gowt1_frames(gowt1):
    """4 full real GOWT1 frames (about 90 cells) with TRA labels and lineage: enough cells for a tiny model."""
    import tifffile

    from napari_bvdm.io.lineage import read_track_file

    frames = sorted((gowt1 / "01").glob("t*.tif"))[:4]
    tra = sorted((gowt1 / "01_GT" / "TRA").glob("man_track*.tif"))[:4]
    image = np.stack([tifffile.imread(f) for f in frames])
    labels = np.stack([tifffile.imread(f) for f in tra]).astype(np.uint16)
    lineage = np.asarray(read_track_file(gowt1 / "01_GT" / "TRA" / "man_track.txt"))
    lineage = lineage[lineage[:, 1] <= 3].copy()  # the tracks of the first 4 frames, cut at frame 3
    lineage[:, 2] = np.minimum(lineage[:, 2], 3)
    lineage[~np.isin(lineage[:, 3], lineage[:, 0]), 3] = 0
    return image, labels, lineage


def _use_data(viewer, qtbot, image, labels, lineage=None):
    from napari_bvdm.widgets import DataWidget

    viewer.add_image(image, name="real")
    viewer.add_labels(labels, name="real labels", metadata={"kind": "TRA", "lineage": lineage})
    data = DataWidget(viewer)
    qtbot.addWidget(data)
    data.select("real", "real labels")
    data.use_layers()
    assert wait_job(qtbot, data).status == "done"
    return data


def test_data_step_takes_the_whole_dropped_sequence(make_napari_viewer, qtbot, gowt1_frames, gowt1_seg):
    """Picking the TRA layer of a dropped CTC folder brings its SEG (sparse) and lineage along."""
    from napari_bvdm.widgets import DataWidget

    image, labels, lineage = gowt1_frames
    viewer = make_napari_viewer()
    _drop(viewer, image, labels, lineage, gowt1_seg)
    w = DataWidget(viewer)
    qtbot.addWidget(w)
    tra = next(layer.name for layer in viewer.layers if layer.name.endswith("TRA"))
    w.select(viewer.layers[0].name, tra)
    w.use_layers()
    assert wait_job(qtbot, w).status == "done"
    video = w.state.video
    assert set(video.labels) == {"TRA", "SEG"} and video.seg_frames == [2]  # man_seg002 is the only SEG of frames 0-3
    np.testing.assert_array_equal(video.lineage, lineage)
    assert w.summary["tracks"] == len(lineage)


def test_flow_train_and_bad_weights(make_napari_viewer, qtbot, gowt1_frames, tmp_path):
    from napari_bvdm.widgets import FlowModelWidget

    viewer = make_napari_viewer()
    _use_data(viewer, qtbot, *gowt1_frames)
    w = FlowModelWidget(viewer)
    qtbot.addWidget(w)
    w.set_path(tmp_path / "flow.safetensors")
    w.child_box.setChecked(False)
    w.model_form.set_values({"crop_size": 64, "encoder": [4, 8], "decoder": [8, 8, 4]})
    w.train_form.set_values({"steps": 6, "batch_size": 4, "val_every": 3, "checkpoint_every": 3,
                             "threads": 1})
    w.train()
    out = wait_job(qtbot, w)
    assert out.status == "done", out
    assert w.state.flow_model is not None and (tmp_path / "flow.safetensors").is_file()
    # a texture file is not a flow model: clear error in the status line, no crash, model kept
    bad = tmp_path / "not-weights.safetensors"
    bad.write_bytes(b"garbage")
    w.load(str(bad))
    out = wait_job(qtbot, w)
    assert out.status == "error" and "safetensors" in str(out.error)
    assert "failed" in w.runner.status.text()
    assert w.state.flow_model is not None


def _screenshot_dir(tmp_path):
    # screenshots of every step, checked to be real pictures (the user guide's come from benchmarks/bench_gui.py)
    return tmp_path / "images"


def _shot(viewer, wf, qtbot, key, folder, widget=None):
    wf.show_step(key, widget)
    qtbot.wait(50)
    folder.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(path=str(folder / f"workflow-{key}.png"), canvas_only=False, flash=False)
    assert shot[..., :3].std() > 5  # a real picture, not a black frame


def _drop(viewer, image, labels, lineage, seg=None):
    """What dropping a CTC folder does: napari-bvdm's reader turns the Video into layers."""
    from napari.layers import Layer

    from napari_bvdm._reader import video_to_layers
    from napari_bvdm.io.video import Video

    seg_frames = [] if seg is None else [t for t in range(len(seg)) if seg[t].any()]
    annotations = {"TRA": labels} if seg is None else {"TRA": labels, "SEG": seg}
    video = Video(image=image, labels=annotations, lineage=lineage, seg_frames=seg_frames,
                  source="Fluo-N2DH-GOWT1 01, first 4 frames", meta={"dataset": "Fluo-N2DH-GOWT1", "sequence": "01"})
    for data, kwargs, kind in video_to_layers(video):
        viewer.add_layer(Layer.create(data, kwargs, kind))


@pytest.fixture
def gowt1_seg(gowt1):
    import tifffile

    seg = np.zeros((4, 1024, 1024), np.uint16)
    for t in range(4):
        f = gowt1 / "01_GT" / "SEG" / f"man_seg{t:03d}.tif"
        if f.is_file():
            seg[t] = tifffile.imread(f)
    return seg


@pytest.mark.slow
def test_workflow_end_to_end(make_napari_viewer, qtbot, gowt1_frames, tmp_path):
    """Drop data, fit, train (cancel + resume), preview side by side, export, validate, open: all from the GUI.

    Takes a screenshot of every step on the way.
    """
    from napari_bvdm.io.validator import validate_ctc
    from napari_bvdm.widgets import WorkflowWidget

    image, labels, lineage = gowt1_frames
    shots = _screenshot_dir(tmp_path)
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1500, 1000)
    _drop(viewer, image, labels, lineage)  # TRA only: one SEG frame of 4 holds too few outlines to fit shapes
    wf = WorkflowWidget(viewer)
    viewer.window.add_dock_widget(wf, area="right", name="BVDM synthesis")
    qtbot.waitUntil(wf.isVisible)
    s = wf.steps
    assert not wf.step_ready("data") and "missing" in wf.header("data")
    assert "missing" in wf.header("generate")

    # 1. data: the layers napari-bvdm's reader made from the dropped folder
    names = [layer.name for layer in viewer.layers]
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image", "Labels", "Tracks"], names
    assert names[1].endswith("TRA")
    s["data"].select(names[0], names[1])
    s["data"].use_layers()
    assert wait_job(qtbot, s["data"]).status == "done"
    assert wf.step_ready("data") and "✔" in wf.header("data")
    video = wf.state.video
    assert set(video.labels) == {"TRA"} and video.lineage is not None
    assert s["data"].summary["tracks"] == len(lineage) and s["data"].summary["divisions"] == 0
    gen_defaults = s["generate"].form.values()  # Generate follows the real video until the user changes it
    assert (gen_defaults["frames"], gen_defaults["height"], gen_defaults["width"]) == (4, 512, 512)
    _shot(viewer, wf, qtbot, "data", shots)

    # 2. shape model (a fixed PCA share: the automatic mode search costs ~10 s)
    s["shape"].fit_form.set_values({"variance_share": 0.95, "n_points": 32, "max_shape_frames": 2})
    s["shape"].fit()
    assert wait_job(qtbot, s["shape"]).status == "done", s["shape"].runner.last_outcome
    assert wf.step_ready("shape")
    s["shape"].preview_form.set_values({"frames": 3, "height": 160, "width": 160, "cells": 3, "seed": 1})
    s["shape"].preview()
    assert wait_job(qtbot, s["shape"]).status == "done", s["shape"].runner.last_outcome
    assert viewer.layers["simulated masks"].data.shape == (3, 160, 160)
    s["shape"].compare()
    assert wait_job(qtbot, s["shape"]).status == "done", s["shape"].runner.last_outcome
    assert "area" in s["shape"].compare_label.text()
    # the plots sit in a panel beside the viewer, never among the user's layers
    assert s["shape"].figure_panel.image.ndim == 3 and not any("comparison" in layer.name for layer in viewer.layers)
    _shot(viewer, wf, qtbot, "shape", shots, s["shape"].summary_label)

    # 3. texture: tiny model, cancel half-way, resume to the end
    tex = s["texture"]
    tex.set_path(tmp_path / "texture.safetensors")
    tex.child_box.setChecked(False)  # in-thread here (faster start); the responsiveness test uses a child process
    tex.unet_form.set_values({"width": 4, "depth": 2})
    tex.model_form.set_values({"crop_size": 64, "T": 50})
    tex.train_form.set_values({"steps": 400, "batch_size": 4, "val_every": 1000, "checkpoint_every": 1000,
                               "precision": "fp32", "num_threads": 1})
    tex.train()
    qtbot.waitUntil(lambda: tex.runner.bar.maximum() == 400 and tex.runner.bar.value() >= 2, timeout=30_000)
    tex.runner.cancel()
    assert wait_job(qtbot, tex).status == "cancelled"
    assert not wf.step_ready("texture")
    tex.train_form.set_values({"steps": 8})
    tex.resume_box.setChecked(True)
    tex.train()
    assert wait_job(qtbot, tex).status == "done", tex.runner.last_outcome
    assert wf.step_ready("texture")
    tex.preview()
    assert wait_job(qtbot, tex).status == "done", tex.runner.last_outcome
    assert tex.last_preview.shape == (2 * 64, 8 * 64)  # real crops over painted ones
    _shot(viewer, wf, qtbot, "texture", shots, tex.runner)

    # 4. flow: tiny model
    flow = s["flow"]
    flow.set_path(tmp_path / "flow.safetensors")
    flow.child_box.setChecked(False)
    flow.model_form.set_values({"crop_size": 64, "encoder": [4, 8], "decoder": [8, 8, 4]})
    flow.train_form.set_values({"steps": 4, "batch_size": 4, "val_every": 4, "checkpoint_every": 4, "threads": 1})
    flow.train()
    assert wait_job(qtbot, flow).status == "done", flow.runner.last_outcome
    assert wf.step_ready("flow")
    _shot(viewer, wf, qtbot, "flow", shots)

    # the run settings round-trip through one file the CLI reads
    settings_file = tmp_path / "run.json"
    wf.save_settings(str(settings_file))
    import json

    saved = json.loads(settings_file.read_text())
    assert saved["texture"]["train"]["steps"] == 8 and saved["train_flow"]["model"]["crop_size"] == 64

    # 5. generate: preview side by side in a napari grid
    gen = s["generate"]
    gen.form.set_values({"frames": 3, "height": 256, "width": 256, "cells": 4, "seed": 3, "painter": "diffusion",
                         "sampler": "ddim", "passes": 2, "first_strength": 20, "refresh_strength": 2,
                         "preview_frames": 2})
    assert gen.preview_btn.isEnabled(), gen.status_text
    gen.preview()
    assert wait_job(qtbot, gen).status == "done", gen.runner.last_outcome
    prev = viewer.layers["BVDM preview"].data
    prev_labels = viewer.layers["BVDM preview labels"].data
    assert prev.shape == (2, 256, 256) and prev_labels.max() > 0
    assert prev[0][prev_labels[0] > 0].mean() > prev[0][prev_labels[0] == 0].mean()  # cells brighter than background
    # side by side: exactly the real excerpt (same frames, same size) and the synthetic layers, one short slider
    from napari_bvdm.widgets.generate_step import PREVIEW, REAL

    assert {layer.name for layer in viewer.layers if layer.visible} == {*PREVIEW, *REAL}
    assert viewer.grid.enabled and tuple(viewer.grid.shape) == (1, 2) and viewer.grid.stride == 3
    assert viewer.layers[REAL[0]].data.shape == prev.shape and viewer.dims.nsteps[0] == 2
    np.testing.assert_array_equal(viewer.layers[REAL[0]].data, np.asarray(image)[:2, :256, :256])
    assert [layer.name for layer in viewer.layers][-6:] == [*PREVIEW, *REAL]  # real on the left canvas
    assert wf.step_ready("generate")
    _shot(viewer, wf, qtbot, "generate", shots, gen.runner)
    gen.end_side_by_side()  # the view as before: every layer visible, no grid, the real video's slider
    assert not viewer.grid.enabled and not any(name in viewer.layers for name in REAL)
    assert all(layer.visible for layer in viewer.layers) and viewer.dims.nsteps[0] == len(image)
    # the full video streams into the viewer frame by frame
    seen = []
    gen.runner.finished.connect(lambda _o: seen.append(viewer.layers["BVDM synthetic"].data.copy()))
    gen.generate()
    assert wait_job(qtbot, gen).status == "done", gen.runner.last_outcome
    full = seen[-1]
    assert full.shape == (3, 256, 256) and all(frame.std() > 0 for frame in full)
    np.testing.assert_array_equal(viewer.layers["BVDM synthetic labels"].data[:2] > 0, prev_labels > 0)  # same seed

    # 6. export: one video, validated, opened
    exp = s["export"]
    exp.set_folder(tmp_path / "synthetic")
    exp.n_videos.setValue(1)
    exp.export()
    assert wait_job(qtbot, exp).status == "done", exp.runner.last_outcome
    assert exp.violations == [] and validate_ctc(tmp_path / "synthetic") == []
    assert (tmp_path / "synthetic" / "synthesis.json").is_file()
    assert wf.step_ready("export") and "valid" in exp.result_label.text()
    exp.open_result()
    assert wait_job(qtbot, exp).status == "done"
    assert viewer.layers["exported 01"].data.shape == (3, 256, 256)
    _shot(viewer, wf, qtbot, "export", shots, exp.open_btn)


@pytest.mark.slow
def test_gui_stays_responsive_during_training(make_napari_viewer, qtbot, gowt1_frames, tmp_path):
    """The Qt event loop keeps serving a 20 ms timer while a texture model trains: no gap over 200 ms."""
    import time

    from qtpy.QtCore import QTimer

    from napari_bvdm.widgets import TextureModelWidget

    viewer = make_napari_viewer()
    _use_data(viewer, qtbot, *gowt1_frames)
    w = TextureModelWidget(viewer)
    qtbot.addWidget(w)
    w.set_path(tmp_path / "texture.safetensors")
    assert w.child_box.isChecked()  # the default: training in a child process
    w.unet_form.set_values({"width": 8, "depth": 2})
    w.model_form.set_values({"crop_size": 64, "T": 50})
    w.train_form.set_values({"steps": 30, "batch_size": 8, "val_every": 15, "checkpoint_every": 15,
                             "precision": "fp32", "num_threads": 1})
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    try:
        w.train()
        qtbot.waitUntil(lambda: w.runner.bar.maximum() == 30 and w.runner.bar.value() >= 1, timeout=30_000)
        start = len(ticks)
        out = wait_job(qtbot, w)
    finally:
        timer.stop()
    assert out.status == "done", out
    gaps = np.diff(ticks[start:])
    assert len(gaps) > 10, "training ended too fast to measure"
    assert gaps.max() < 0.2, f"GUI blocked for {gaps.max() * 1000:.0f} ms during training"
