"""Shape model step: fit on the real labels, summary, preview simulation (Labels + Tracks), compare."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QFileDialog, QGridLayout, QLabel, QPushButton, QWidget

from ._base import MISSING, READY, UNAVAILABLE, StepWidget, unavailable_reason
from ._form import ConfigForm
from ._recipe import BUNDLED_DEFAULT

__all__ = ["ShapeModelWidget"]

FIT_FIELDS = ("n_points", "variance_share", "min_object_area", "max_shape_frames", "keep_outlines")
PREVIEW_FIELDS = ("frames", "height", "width", "cells", "density_scale", "seed", "divisions", "outlines")


class ShapeModelWidget(StepWidget):
    """Dock widget "Shape model" (issue 3): statistical shapes, motion, divisions, population."""

    key = "shape"
    title = "Shape model"

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.missing = unavailable_reason("napari_bvdm.shapes", ("fit_shape_model", "ShapeModel", "simulate_masks",
                                                                 "SimulationConfig", "FitConfig"))
        self.last_preview = None
        self.fit_form = self.preview_form = None
        if self.missing is None:
            from ..shapes import FitConfig, SimulationConfig

            self.fit_form = ConfigForm(FitConfig, "fit-shapes", FIT_FIELDS)
        self.fit_btn = QPushButton("Fit on the labels")
        self.fit_btn.setToolTip("learn cell outlines, sizes, brightness, motion and divisions from the Data step's "
                                "labels (seconds to a minute)")
        self.add(self.fit_btn)
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.add(self.summary_label)
        if self.fit_form is not None:
            self.add_advanced(self.fit_form)
        grid = QGridLayout()
        self.load_btn = QPushButton("Load model…")
        self.load_btn.setToolTip("use a shape model saved earlier (.json)")
        self.save_btn = QPushButton("Save model…")
        self.save_btn.setToolTip("save the fitted shape model as a .json file (asks before replacing a file)")
        self.default_btn = QPushButton("Use default model")
        self.default_btn.setToolTip("the shape model bundled with napari-bvdm (fitted on a real nucleus video)")
        grid.addWidget(self.default_btn, 0, 0)
        grid.addWidget(self.load_btn, 1, 0)
        grid.addWidget(self.save_btn, 1, 1)
        holder = QWidget()
        holder.setLayout(grid)
        grid.setContentsMargins(0, 0, 0, 0)
        self.add_advanced(holder)
        if self.missing is None:
            self.add_advanced(QLabel("Preview simulation"))
            self.preview_form = self.add_advanced(ConfigForm(SimulationConfig, "simulate-masks", PREVIEW_FIELDS))
        self.preview_btn = QPushButton("Simulate preview masks")
        self.preview_btn.setToolTip("simulate a mask video into a Labels + Tracks layer")
        self.compare_btn = QPushButton("Compare with the real video")
        self.compare_btn.setToolTip("simulate a video of the real one's size and length and compare the cells: "
                                    "distributions of area, shape, speed and cells per frame (two-sample KS), "
                                    "plotted in a panel beside the viewer")
        self.add_advanced(self.preview_btn)
        self.add_advanced(self.compare_btn)
        self.compare_label = QLabel("")
        self.compare_label.setWordWrap(True)
        self.compare_label.setStyleSheet("font-family: monospace")
        self.add(self.compare_label)
        self.finish_layout()
        self.fit_btn.clicked.connect(self.fit)
        self.load_btn.clicked.connect(lambda: self.load())
        self.save_btn.clicked.connect(lambda: self.save())
        self.default_btn.clicked.connect(self.use_default)
        self.preview_btn.clicked.connect(self.preview)
        self.compare_btn.clicked.connect(self.compare)
        self.state.events.shape_model.connect(self._refresh)
        self.state.events.video.connect(self._refresh)
        self._refresh()

    def run_buttons(self) -> list[QWidget]:
        return [self.fit_btn, self.load_btn, self.save_btn, self.default_btn, self.preview_btn, self.compare_btn]

    def _on_running_changed(self, running: bool) -> None:
        super()._on_running_changed(running)
        if not running:
            self._refresh()

    def _refresh(self, *_a: Any) -> None:
        model = self.state.shape_model
        ok = self.missing is None and not self.runner.running
        has_labels = self.state.video is not None and bool(self.state.video.labels)
        self.fit_btn.setEnabled(ok and has_labels)
        self.load_btn.setEnabled(ok)
        self.default_btn.setEnabled(ok)
        self.save_btn.setEnabled(ok and model is not None)
        self.preview_btn.setEnabled(ok and model is not None)
        self.compare_btn.setEnabled(ok and model is not None and has_labels)
        if self.missing:
            self.set_status(f"unavailable: {self.missing}", UNAVAILABLE)
        elif model is not None:
            self.summary_label.setText(model.summary())
            self.set_status(f"ready: {self.state.shape_path or 'fitted, not saved'}", READY)
        else:
            self.set_status("missing: fit on the data's labels, or load a model / the default", MISSING)

    # ------------------------------------------------------------------ actions
    def fit(self) -> None:
        from ..shapes import fit_shape_model

        video = self.state.video
        if video is None or not video.labels:
            self.set_status("missing: pick a video with labels in the Data step first", MISSING)
            return
        cfg = self.fit_form.config()

        def done(model: Any) -> None:
            self.state.shape_path = ""
            self.state.shape_model = model

        self.runner.start(lambda token: fit_shape_model(video, cfg, cancel=token), done, title="Fitting shape model")

    def load(self, path: str | None = None) -> None:
        from ..shapes import ShapeModel

        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load shape model", self.settings.get("shape", "path", ""),
                                                  "shape model (*.json)")
            if not path:
                return
        elif not self.confirm_overwrite(str(path), "the fitted shape model"):
            return
        self.settings.set("shape", "path", str(path))

        def done(model: Any) -> None:
            self.state.shape_path = str(path)
            self.state.shape_model = model

        self.runner.start(lambda token: ShapeModel.load(path), done, title="Loading shape model")

    def use_default(self) -> None:
        from ..shapes import ShapeModel

        def done(model: Any) -> None:
            self.state.shape_path = BUNDLED_DEFAULT
            self.state.shape_model = model

        self.runner.start(lambda token: ShapeModel.default(), done, title="Loading default shape model")

    def save(self, path: str | None = None) -> None:
        model = self.state.shape_model
        if model is None:
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save shape model", self.settings.get("shape", "path", ""),
                                                  "shape model (*.json)")
            if not path:
                return
        elif not self.confirm_overwrite(str(path), "the fitted shape model"):
            return
        self.settings.set("shape", "path", str(path))

        def done(saved: Any) -> None:
            self.state.shape_path = str(saved)
            self._refresh()

        self.runner.start(lambda token: model.save(path), done, title="Saving shape model")

    def preview(self) -> None:
        from ..shapes import simulate_masks

        model = self.state.shape_model
        cfg = self.preview_form.config()

        def done(masks: Any) -> None:
            self.last_preview = masks
            name = "simulated masks"
            if name in self.viewer.layers:
                self.viewer.layers[name].data = masks.labels
            else:
                self.viewer.add_labels(masks.labels, name=name, metadata={"lineage": masks.lineage})
            data, graph = masks.tracks_layer_data()
            tname = "simulated tracks"
            if tname in self.viewer.layers:
                self.viewer.layers.remove(tname)
            if len(data):
                self.viewer.add_tracks(data, graph=graph, name=tname)
            self._refresh()

        self.runner.start(lambda token: simulate_masks(model, cfg, cancel=token), done, title="Simulating masks")

    def compare(self) -> None:
        from ..shapes import compare, simulate_masks

        video, model = self.state.video, self.state.shape_model
        if video is None or model is None:
            return
        t, h, w = video.shape
        # the simulation compared is made at the real video's size and length, whatever the preview's
        cfg = self.preview_form.config().replace(frames=int(t), height=int(h), width=int(w), cells=None)

        def job(token):
            from ._layers import figure_to_rgb

            sim = yield from simulate_masks(model, cfg, cancel=token)
            report = compare(video, sim)
            return report, figure_to_rgb(report.figure())

        def done(result: Any) -> None:
            from ._figure_dock import show_figure

            report, plots = result
            self.last_report = report
            self.compare_label.setText(report.table())
            self.figure_panel = show_figure(
                self.viewer, "BVDM: real vs simulated cells", plots,
                f"real video and a simulation of the same size ({h} x {w} px, {t} frames): distributions of "
                "size, shape, speed and brightness; the KS numbers are in the Shape model step")

        self.runner.start(job, done, title="Comparing with the real video")

    def params(self) -> dict[str, Any]:
        if self.fit_form is None:
            return {}
        return {"fit": self.fit_form.values(), "simulate": self.preview_form.values()}

    def set_params(self, values: dict[str, Any]) -> None:
        if self.fit_form is None:
            return
        self.fit_form.set_values(values.get("fit", {}))
        self.preview_form.set_values(values.get("simulate", {}))
