"""Generate step: preview a few frames side by side with the real video, or stream a full video."""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import QLabel, QPushButton, QWidget

from ._base import MISSING, READY, UNAVAILABLE, StepWidget, unavailable_reason
from ._breathe import breathe
from ._form import ConfigForm
from ._recipe import GenerateParams, generate_job, missing_for_generation

__all__ = ["GenerateWidget"]

PREVIEW = ("BVDM preview", "BVDM preview labels", "BVDM preview tracks")
FULL = ("BVDM synthetic", "BVDM synthetic labels", "BVDM synthetic tracks")
REAL = ("BVDM real (same frames)", "BVDM real labels (same frames)", "BVDM real tracks (same frames)")


class GenerateWidget(StepWidget):
    """Dock widget "Generate": masks from the shape model, textures, flow; layers out."""

    key = "generate"
    title = "Generate"

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.missing = unavailable_reason("napari_bvdm.synthesis", ("generate_video", "fit_scene_stats",
                                                                    "SynthesisConfig"))
        self.form = ConfigForm(GenerateParams, "generate")
        self._apply_model_defaults()
        self.preview_btn = QPushButton("Preview side by side")
        self.preview_btn.setToolTip("make the first few frames of synthetic video 01 and show them next to the same "
                                    "number of real frames, each with its labels and tracks (seconds to a minute "
                                    "on a CPU); Export later reuses them")
        self.add(self.preview_btn)
        self.back_btn = QPushButton("Back to the normal view")
        self.back_btn.setToolTip("end the side-by-side view: the layers, their visibility and the grid as before")
        self.back_btn.setVisible(False)
        self.back_btn.clicked.connect(self.end_side_by_side)
        self.add(self.back_btn)
        self.add_advanced(self.form)
        self.generate_btn = QPushButton("Generate the whole video")
        self.generate_btn.setToolTip("make all frames of video 01 into the viewer, as they come; Export writes it "
                                     "without making it again")
        self.add_advanced(self.generate_btn)
        self.info_label = QLabel("")
        self.info_label.setWordWrap(True)
        self.add(self.info_label)
        self.finish_layout()
        self.preview_btn.clicked.connect(self.preview)
        self.generate_btn.clicked.connect(self.generate)
        for ev in ("shape_model", "texture_model", "flow_model", "video", "generated"):
            getattr(self.state.events, ev).connect(self._refresh)
        self.state.events.texture_model.connect(self._apply_model_defaults)
        self.state.events.video.connect(self._apply_video_defaults)
        self._streaming: dict[str, Any] = {}
        self._view_before: dict[str, Any] | None = None
        self._real_layers: list[str] = []
        self._refresh()

    def params(self) -> dict[str, Any]:
        return self.form.values()

    def set_params(self, values: dict[str, Any]) -> None:
        self.form.set_values(values)

    def generate_params(self) -> GenerateParams:
        return GenerateParams.from_dict(self.form.values())

    def _apply_model_defaults(self, *_a: Any) -> None:
        # sensible defaults from the fitted models: the painter's steps come with the texture model
        model = self.state.texture_model
        if model is not None and "first_strength" not in self.settings.section("generate"):
            self.form.set_values({"first_strength": min(200, int(model.config.T))})

    def _apply_video_defaults(self, video: Any) -> None:
        # until the user sets them, frames and canvas follow the real video (capped for a quick first run)
        saved = self.settings.section("generate")
        if video is None or any(k in saved for k in ("frames", "height", "width")):
            return
        try:
            t, h, w = video.shape
        except Exception:
            return
        self.form.set_values({"frames": min(int(t), 50), "height": min(int(h), 512), "width": min(int(w), 512)})

    def run_buttons(self) -> list[QWidget]:
        return [self.preview_btn, self.generate_btn]

    def _on_running_changed(self, running: bool) -> None:
        super()._on_running_changed(running)
        if not running:
            self._refresh()

    def _refresh(self, *_a: Any) -> None:
        try:
            params = self.generate_params()
        except ValueError:
            params = GenerateParams()
        lacking = missing_for_generation(self.state, params)
        ok = self.missing is None and not lacking and not self.runner.running
        self.preview_btn.setEnabled(ok)
        self.generate_btn.setEnabled(ok)
        if self.missing:
            self.set_status(f"unavailable: {self.missing}", UNAVAILABLE)
        elif lacking:
            self.set_status("missing: " + ", ".join(lacking), MISSING)
        elif self.state.generated is not None:
            self.set_status("ready: a synthetic video is in the viewer", READY)
        else:
            self.set_status("ready to generate: Preview for a quick look, Generate for the whole video", MISSING)

    # ------------------------------------------------------------------ actions
    def preview(self) -> None:
        self.end_side_by_side()
        params = self.generate_params()
        self._run(params, params.preview_frames, PREVIEW, grid=True)

    def generate(self) -> None:
        self.end_side_by_side()
        params = self.generate_params()
        self._run(params, params.frames, FULL, grid=False)

    def _run(self, params: GenerateParams, frames: int, names: tuple[str, str, str], grid: bool) -> None:
        state = self.state
        self._streaming = {"names": names, "frames": frames, "params": params}

        def on_item(item: Any) -> None:
            if hasattr(item, "image") and hasattr(item, "labels") and hasattr(item, "t"):
                self._show_frame(item)

        def done(result: dict[str, Any]) -> None:
            data, graph = result["tracks"]
            if names[2] in self.viewer.layers:
                self.viewer.layers.remove(names[2])
            if len(data):
                breathe()
                self.viewer.add_tracks(data, graph=graph, name=names[2], **self._scale())
            warn = (result.get("info") or {}).get("warnings") or []
            whole = result["draft"].n_frames
            self.info_label.setText(
                f"{frames} of {whole} frames of {params.height} x {params.width}, {result['n_tracks']} tracks, "
                f"{result['daughters']} daughters" + (f"; warnings: {'; '.join(map(str, warn))}" if warn else "")
                + ("" if frames >= whole else "; Generate or Export continues this video"))
            if grid:
                self._side_by_side(names)
                if self._view_before is not None:
                    self.info_label.setText(self.info_label.text() + f". Left: the real video's first {frames} "
                                            "frames (same size); right: synthetic video 01; labels as outlines.")
            state.generated = result

        self._made = 0
        self.runner.finished.connect(self._mark_partial)
        self.runner.start(lambda token: generate_job(state, params, frames=frames, cancel=token), done,
                          title="Preview" if grid else "Generating", on_progress=on_item)

    def _mark_partial(self, outcome: Any) -> None:
        """A cancelled or failed run leaves its frames in the viewer, named as what they are."""
        self.runner.finished.disconnect(self._mark_partial)
        if getattr(outcome, "status", "done") == "done" or not self._streaming:
            return
        names, n = self._streaming["names"], self._streaming["frames"]
        word = "cancelled" if outcome.status == "cancelled" else "failed"
        tag = f" ({word}: {self._made} of {n} frames)"
        for name in names[:2]:
            if name in self.viewer.layers:
                self.viewer.layers[name].name = name + tag
        self.info_label.setText(f"{word} after {self._made} of {n} frames: the layers ending in '{tag.strip()}' "
                                "hold only the frames made so far; Export makes complete videos")

    def _scale(self) -> dict[str, Any]:
        """Layer scale in micrometres: the pixel size of the real video the shape model was fitted on."""
        model, video = self.state.shape_model, self.state.video
        px = (getattr(model, "source", None) or {}).get("pixel_size") or (
            (getattr(video, "meta", None) or {}).get("pixel_size"))
        return {"scale": (1.0, float(px), float(px))} if px else {}

    def _show_frame(self, frame: Any) -> None:
        names, n = self._streaming["names"], self._streaming["frames"]
        img_name, lab_name = names[0], names[1]
        shape = (n, *frame.image.shape)
        if frame.t == 0 or img_name not in self.viewer.layers or self.viewer.layers[img_name].data.shape != shape:
            for layer in list(self.viewer.layers):  # this run's layers and partial ones of earlier runs
                if layer.name in (img_name, lab_name) or layer.name.startswith(
                        tuple(f"{n} ({w}:" for n in (img_name, lab_name) for w in ("cancelled", "failed"))):
                    self.viewer.layers.remove(layer)
            scale = self._scale()
            self.viewer.add_image(np.zeros(shape, frame.image.dtype), name=img_name, **scale)
            self.viewer.add_labels(np.zeros(shape, np.uint16), name=lab_name, **scale)
        img, lab = self.viewer.layers[img_name], self.viewer.layers[lab_name]
        self._made = frame.t + 1
        img.data[frame.t] = frame.image
        lab.data[frame.t] = frame.labels
        if frame.t == 0:
            img.reset_contrast_limits()
        img.refresh()
        lab.refresh()
        try:
            self.viewer.dims.set_current_step(0, frame.t)
        except Exception:  # a viewer without a time axis yet
            pass

    def _side_by_side(self, names: tuple[str, str, str]) -> None:
        """Two canvases in napari's grid: the same number of real frames (same size, same scale) with their labels
        and tracks on the left, the synthetic ones on the right; every other layer hidden until
        :meth:`end_side_by_side` puts the view back as it was."""
        self.end_side_by_side()
        synth = [self.viewer.layers[n] for n in names if n in self.viewer.layers]
        if not synth:
            return
        n, h, w = synth[0].data.shape[:3]
        real = self._real_excerpt(n, h, w)
        self._view_before = {
            "visible": {layer.name: layer.visible for layer in self.viewer.layers},
            "grid": (self.viewer.grid.enabled, tuple(self.viewer.grid.shape), int(self.viewer.grid.stride)),
            "step": tuple(self.viewer.dims.current_step)}
        scale = self._scale()
        added = []
        for name, kind, data, kw in real:
            breathe()
            added.append(getattr(self.viewer, f"add_{kind}")(data, name=name, **kw, **scale))
        self._real_layers = [layer.name for layer in added]
        # the top three (real) fill the left canvas, the next three the right one; layers are matched by name
        # (the viewer handed to a plugin wraps each layer in a new proxy object on every access)
        group = [layer.name for layer in (*synth, *added)]
        for layer in self.viewer.layers:
            layer.visible = layer.name in group
        for name in group:
            self.viewer.layers.move(self.viewer.layers.index(name), len(self.viewer.layers))
        breathe()
        self.viewer.grid.stride = len(added) if len(added) == len(synth) else 1
        self.viewer.grid.shape = (1, 2) if len(added) == len(synth) else (-1, -1)
        self.viewer.grid.enabled = True
        breathe()
        for name in group:  # outlines, so the texture under the labels stays visible
            layer = self.viewer.layers[name]
            if hasattr(layer, "contour"):
                layer.contour = 2
        breathe()
        self.viewer.reset_view()
        self._limit_time_slider(n)
        self.back_btn.setVisible(True)

    def _limit_time_slider(self, n: int) -> None:
        """The time slider over the ``n`` previewed frames only (the hidden layers are longer)."""
        dims = self.viewer.dims
        try:
            ranges = list(dims.range)
            ranges[0] = (0.0, float(n - 1), 1.0)
            dims.range = tuple(ranges)
            dims.set_current_step(0, 0)
        except Exception:  # napari versions without a settable range keep the full slider
            pass

    def _real_excerpt(self, n: int, h: int, w: int) -> list[tuple[str, str, Any, dict[str, Any]]]:
        """The real video's first ``n`` frames cut to ``h`` x ``w``, with labels and tracks, as layer specs."""
        from ._layers import tracks_layer_data

        video = self.state.video
        if video is None or video.image is None:
            return []
        win = (slice(0, n), slice(0, h), slice(0, w))
        image = np.asarray(video.image[win])
        dense = video.dense_labels()
        specs = [(REAL[0], "image", image, {})]
        if dense is not None:
            labels = np.asarray(dense[1][win])
            specs.append((REAL[1], "labels", labels, {}))
            data, graph = tracks_layer_data(labels, getattr(video, "lineage", None))
            if len(data):
                specs.append((REAL[2], "tracks", data, {"graph": graph}))
        return specs

    def end_side_by_side(self) -> None:
        """Put the view back as it was before the side-by-side preview (the synthetic layers stay)."""
        before = getattr(self, "_view_before", None)
        if before is None:
            return
        self._view_before = None
        for name in getattr(self, "_real_layers", []):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        self._real_layers = []
        for layer in self.viewer.layers:
            layer.visible = before["visible"].get(layer.name, layer.visible)
            if layer.name in PREVIEW and hasattr(layer, "contour"):
                layer.contour = 0
        enabled, shape, stride = before["grid"]
        self.viewer.grid.stride = stride
        self.viewer.grid.shape = shape
        self.viewer.grid.enabled = enabled
        try:
            self.viewer.dims.current_step = before["step"]
        except Exception:  # the layers changed size meanwhile
            pass
        self.viewer.reset_view()
        self.back_btn.setVisible(False)
