"""GUI export: a dataset's record names every model it was made with, including models only in memory."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def _private_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_BVDM_CONFIG_DIR", str(tmp_path / "config"))


def _export(qtbot, w, folder, n):
    w.set_folder(folder)
    w.n_videos.setValue(n)
    w.export()
    qtbot.waitUntil(lambda: not w.runner.running, timeout=300_000)
    return w.runner.last_outcome


def test_export_saves_models_used_from_memory_beside_the_dataset(make_napari_viewer_proxy, qtbot, tmp_path):
    from napari_bvdm.flow import FlowModel
    from napari_bvdm.io.validator import validate_ctc
    from napari_bvdm.shapes import ShapeModel
    from napari_bvdm.synthesis.export import read_record
    from napari_bvdm.widgets import ExportWidget
    from napari_bvdm.widgets._recipe import BUNDLED_DEFAULT

    w = ExportWidget(make_napari_viewer_proxy())
    qtbot.addWidget(w)
    w.settings.set("generate", "frames", 3)
    for key, value in (("height", 64), ("width", 64), ("cells", 2), ("painter", "classical")):
        w.settings.set("generate", key, value)
    w.state.shape_model = ShapeModel.default()  # as if fitted in the GUI: in memory, no file
    w.state.shape_path = ""
    w.state.flow_model = FlowModel.default()
    w.state.flow_path = BUNDLED_DEFAULT
    out = tmp_path / "synthetic"
    outcome = _export(qtbot, w, out, 1)
    assert outcome.status == "done", outcome
    assert validate_ctc(out) == []
    saved = out / "models" / "shape_model.json"
    assert ShapeModel.load(saved).to_dict() == ShapeModel.default().to_dict()
    run = read_record(out / "synthesis.json")["run"]
    assert run["config"]["shapes"]["model"] == str(saved)
    assert run["models"]["shapes"]["path"] == str(saved) and len(run["models"]["shapes"]["sha256"]) == 64
    assert run["config"]["flow"]["model"] == ""  # the bundled flow model, hashed as such
    assert "flow" in run["models"]


def test_export_writes_the_previewed_frames_and_paints_only_the_rest(make_napari_viewer_proxy, qtbot, tmp_path,
                                                                       monkeypatch):
    import numpy as np
    import tifffile

    from napari_bvdm.flow import FlowModel
    from napari_bvdm.io.validator import validate_ctc
    from napari_bvdm.shapes import ShapeModel
    from napari_bvdm.synthesis import pipeline
    from napari_bvdm.widgets import ExportWidget, GenerateWidget
    from napari_bvdm.widgets._recipe import BUNDLED_DEFAULT

    viewer = make_napari_viewer_proxy()
    gen, exp = GenerateWidget(viewer), ExportWidget(viewer)
    qtbot.addWidget(gen)
    qtbot.addWidget(exp)
    gen.form.set_values({"frames": 4, "height": 64, "width": 64, "cells": 2, "painter": "classical", "seed": 2,
                         "preview_frames": 2})
    gen.state.shape_model, gen.state.shape_path = ShapeModel.default(), BUNDLED_DEFAULT
    gen.state.flow_model, gen.state.flow_path = FlowModel.default(), BUNDLED_DEFAULT
    painted = []
    frame = pipeline._frame
    monkeypatch.setattr(pipeline, "_frame", lambda v, t: painted.append(t) or frame(v, t))
    gen.preview()
    qtbot.waitUntil(lambda: not gen.runner.running, timeout=120_000)
    assert gen.runner.last_outcome.status == "done", gen.runner.last_outcome
    assert painted == [0, 1]
    shown = np.asarray(viewer.layers["BVDM preview"].data).copy()
    out = tmp_path / "synthetic"
    outcome = _export(qtbot, exp, out, 2)
    assert outcome.status == "done", outcome
    assert painted == [0, 1, 2, 3, 0, 1, 2, 3]  # video 01 continued from the preview, video 02 made whole
    assert validate_ctc(out) == []
    for t in range(2):  # the exported frames are the previewed ones (the TIFFs hold raw units)
        assert np.array_equal(tifffile.imread(out / "01" / f"t{t:03d}.tif"), shown[t])
    # exporting again into the same folder keeps the videos made with these settings
    outcome = _export(qtbot, exp, out, 2)
    assert outcome.status == "done", outcome
    assert painted == [0, 1, 2, 3, 0, 1, 2, 3]


def test_export_can_add_cellpose_training_pairs(make_napari_viewer_proxy, qtbot, tmp_path):
    from napari_bvdm.flow import FlowModel
    from napari_bvdm.shapes import ShapeModel
    from napari_bvdm.widgets import ExportWidget
    from napari_bvdm.widgets._recipe import BUNDLED_DEFAULT

    w = ExportWidget(make_napari_viewer_proxy())
    qtbot.addWidget(w)
    for key, value in (("frames", 3), ("height", 64), ("width", 64), ("cells", 2), ("painter", "classical")):
        w.settings.set("generate", key, value)
    w.state.shape_model, w.state.shape_path = ShapeModel.default(), BUNDLED_DEFAULT
    w.state.flow_model, w.state.flow_path = FlowModel.default(), BUNDLED_DEFAULT
    w.pairs_combo.setCurrentIndex(w.pairs_combo.findData("cellpose"))
    outcome = _export(qtbot, w, tmp_path / "synthetic", 1)
    assert outcome.status == "done", outcome
    pairs = tmp_path / "synthetic-cellpose"
    assert len(list(pairs.glob("*_masks.tif"))) == 3 and f"cellpose: {pairs}" in w.result_label.text()
    outcome = _export(qtbot, w, tmp_path / "synthetic", 2)  # a second export refreshes the pairs
    assert outcome.status == "done", outcome
    assert len(list(pairs.glob("*_masks.tif"))) == 6
