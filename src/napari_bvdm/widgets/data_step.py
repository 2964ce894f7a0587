"""Data step: pick the real video's image and labels layers, summarise them, segment if needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QMenu,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ._base import MISSING, READY, StepWidget
from ._layers import (
    classical_segmentation,
    format_summary,
    grey_image,
    layer_info,
    lineage_from_metadata,
    summarise_video,
)

__all__ = ["DataWidget"]

NONE = "(none)"
#: napari reader-preference patterns of the inputs napari-bvdm reads (a folder is matched with a trailing "/")
READER_PATTERNS = ("*.tif", "*.tiff", "*/")
PLUGIN = "napari-bvdm"


def _reader_settings():
    from napari.settings import get_settings

    return get_settings().plugins


def reader_preferred() -> bool:
    """Whether napari opens TIFFs and folders with napari-bvdm without asking."""
    try:
        prefs = _reader_settings().extension2reader
    except Exception:  # no napari settings (e.g. a read-only settings file)
        return False
    return all(prefs.get(p) == PLUGIN for p in READER_PATTERNS)


def prefer_reader(on: bool) -> None:
    """Set (or remove) napari's reader preference for TIFFs and folders to napari-bvdm."""
    plugins = _reader_settings()
    prefs = dict(plugins.extension2reader)
    for pattern in READER_PATTERNS:
        if on:
            prefs[pattern] = PLUGIN
        elif prefs.get(pattern) == PLUGIN:
            del prefs[pattern]
    plugins.extension2reader = prefs


class DataWidget(StepWidget):
    """Pick image + labels layers (dropped TIFF or CTC folder) and hand them to the workflow."""

    key = "data"
    title = "Data"

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.summary: dict[str, Any] | None = None
        self.open_btn = QPushButton("Open a video…")
        self.open_btn.setToolTip("open a TIFF stack, a folder of frames or a CTC sequence with napari-bvdm (no "
                                 "reader chooser); its image and labels are picked and used at once")
        menu = QMenu(self.open_btn)
        menu.addAction("TIFF file…", lambda: self.open_dialog(folder=False))
        menu.addAction("Folder of frames or CTC sequence…", lambda: self.open_dialog(folder=True))
        self.open_btn.setMenu(menu)
        self.add(self.open_btn)
        form = QFormLayout()
        box = QWidget()
        box.setLayout(form)
        form.setContentsMargins(0, 0, 0, 0)
        self.image_combo = QComboBox()
        self.labels_combo = QComboBox()
        self.image_combo.setToolTip("the real video (time, y, x): any image layer, e.g. a dropped TIFF or CTC folder")
        self.labels_combo.setToolTip("its cell labels (CTC TRA/SEG or any Labels layer); '(none)' offers a "
                                     "classical segmentation")
        for combo in (self.image_combo, self.labels_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        self.axis_combo = QComboBox()
        self.axis_combo.addItems(["time", "z (depth)"])
        self.axis_combo.setToolTip("what the image's first axis is: time points of a time-lapse, or z-slices of a "
                                   "3D stack (3D stacks are not supported yet); read from the file where it says")
        form.addRow("Image", self.image_combo)
        form.addRow("Labels", self.labels_combo)
        self.pixel_size = QDoubleSpinBox()
        self.pixel_size.setRange(0.0, 1000.0)
        self.pixel_size.setDecimals(4)
        self.pixel_size.setSingleStep(0.01)
        self.pixel_size.setSuffix(" µm")
        self.pixel_size.setSpecialValueText("unknown")
        self.pixel_size.setToolTip("size of one pixel in micrometres; read from the file where it says so, else "
                                   "type it in (it is written into the exported TIFFs)")
        self.add(box)
        adv_form = QFormLayout()
        adv = QWidget()
        adv.setLayout(adv_form)
        adv_form.addRow("First axis", self.axis_combo)
        adv_form.addRow("Pixel size", self.pixel_size)
        self.add_advanced(adv)
        self.reader_box = QCheckBox("Open dropped TIFFs and folders with napari-bvdm")
        self.reader_box.setToolTip("napari asks which plugin should read a dropped file when several can (napari's "
                                   "own reader, napari-ctc-io, ...); with this on, TIFF files and folders open with "
                                   "napari-bvdm without asking (napari's Preferences > Plugins keep the choice)")
        self.reader_box.setChecked(reader_preferred())
        self.reader_box.toggled.connect(prefer_reader)
        self.add_advanced(self.reader_box)
        self.use_btn = QPushButton("Use these layers")
        self.use_btn.setToolTip("summarise the video and make it the input of every step")
        self.use_btn.clicked.connect(self.use_layers)
        self.add(self.use_btn)
        self.summary_label = QLabel("No video picked yet.")
        self.summary_label.setWordWrap(True)
        self.add(self.summary_label)

        self._build_segmentation_box()
        self.finish_layout()

        ev = self.viewer.layers.events
        for name in ("inserted", "removed", "moved", "reordered"):
            sig = getattr(ev, name, None)
            if sig is not None:
                sig.connect(self._refresh_layers)
        self.labels_combo.currentIndexChanged.connect(self._update_seg_box)
        self.image_combo.currentIndexChanged.connect(self._guess_axis)
        self.state.events.video.connect(self._on_video)
        self._refresh_layers()
        self._on_video(self.state.video)

    def _build_segmentation_box(self) -> None:
        """The classical segmentation, offered when there are no labels."""
        self.seg_box = QGroupBox("No labels? Start from a classical segmentation")
        seg_form = QFormLayout(self.seg_box)
        self.sigma = QDoubleSpinBox()
        self.sigma.setRange(0.0, 20.0)
        self.sigma.setValue(float(self.settings.get("data", "sigma", 2.0)))
        self.sigma.setToolTip("Gaussian smoothing (px) before thresholding")
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1e9)
        self.threshold.setDecimals(2)
        self.threshold.setSpecialValueText("auto")
        self.threshold.setValue(float(self.settings.get("data", "threshold", 0.0)))
        self.threshold.setToolTip("intensity threshold on the smoothed image; 'auto' = the method below, per frame")
        self.method = QComboBox()
        self.method.addItems(["triangle", "otsu", "li"])
        self.method.setCurrentText(str(self.settings.get("data", "method", "triangle")))
        self.method.setToolTip("automatic threshold: triangle suits dark backgrounds with bright nuclei")
        self.method.currentTextChanged.connect(lambda v: self.settings.set("data", "method", v))
        self.min_size = QSpinBox()
        self.min_size.setRange(1, 10**7)
        self.min_size.setValue(int(self.settings.get("data", "min_size", 50)))
        self.min_size.setToolTip("remove objects smaller than this (px)")
        self.min_distance = QSpinBox()
        self.min_distance.setRange(1, 1000)
        self.min_distance.setValue(int(self.settings.get("data", "min_distance", 7)))
        self.min_distance.setToolTip("minimum distance between watershed seeds (px), about half a nucleus radius")
        seg_form.addRow("smoothing", self.sigma)
        seg_form.addRow("threshold", self.threshold)
        seg_form.addRow("auto method", self.method)
        seg_form.addRow("min size", self.min_size)
        seg_form.addRow("seed distance", self.min_distance)
        self.segment_btn = QPushButton("Segment (threshold + watershed)")
        self.segment_btn.setToolTip("find the cells by thresholding the smoothed image and splitting touching ones "
                                    "(watershed); adds a Labels layer to check before 'Use these layers'")
        self.segment_btn.clicked.connect(self.segment)
        seg_form.addRow(self.segment_btn)
        self.add(self.seg_box)
        for w, key in ((self.sigma, "sigma"), (self.threshold, "threshold"), (self.min_size, "min_size"),
                       (self.min_distance, "min_distance")):
            w.valueChanged.connect(lambda v, k=key: self.settings.set("data", k, v))

    # ----------------------------------------------------------------------------- layers
    def _refresh_layers(self, *_args: Any) -> None:
        for combo, kind, allow_none in ((self.image_combo, "image", False), (self.labels_combo, "labels", True)):
            current = combo.currentText()
            names = self.layer_names(kind)
            combo.blockSignals(True)
            combo.clear()
            if allow_none:
                combo.addItem(NONE)
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            elif names:
                combo.setCurrentText(names[0])
            combo.blockSignals(False)
        self._update_seg_box()
        self._guess_axis()

    def _guess_axis(self, *_args: Any) -> None:
        """The file's own axis names decide the first axis where it has them (ImageJ/OME: T or Z); its pixel
        size (the layer's scale) fills the pixel size."""
        layer = self.layer(self.image_combo.currentText())
        if layer is not None:
            px = layer_info(layer.metadata).get("pixel_size")
            scale = tuple(float(v) for v in getattr(layer, "scale", ())[-1:])
            if px or (scale and scale[0] != 1.0):
                self.pixel_size.setValue(float(px or scale[0]))
        axes = str(layer_info(getattr(layer, "metadata", None)).get("axes", "")).upper() if layer else ""
        if axes and len(axes) >= 3:
            self.axis_combo.setCurrentIndex(1 if axes[0] == "Z" else 0)

    def _update_seg_box(self, *_args: Any) -> None:
        has_image = self.image_combo.count() > 0
        self.seg_box.setVisible(has_image and self.labels_combo.currentText() == NONE)
        self.use_btn.setEnabled(has_image and not self.runner.running)

    def run_buttons(self) -> list[QWidget]:
        return [self.use_btn, self.segment_btn]

    def select(self, image: str, labels: str | None = None) -> None:
        """Select layers by name (used by the workflow and tests)."""
        self._refresh_layers()
        self.image_combo.setCurrentText(image)
        self.labels_combo.setCurrentText(labels or NONE)
        self._guess_axis()

    # ----------------------------------------------------------------------------- actions
    def open_dialog(self, folder: bool) -> None:
        start = str(self.settings.get("data", "last_opened", "") or "")
        if folder:
            path = QFileDialog.getExistingDirectory(self, "Open a folder of frames or a CTC sequence", start)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Open a TIFF video", start, "TIFF (*.tif *.tiff)")
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> None:
        """Open ``path`` with napari-bvdm's reader (never a chooser), pick its layers and use them."""
        from ..io.video import InputError

        self.settings.set("data", "last_opened", str(path))
        try:
            layers = self.viewer.open(str(path), plugin="napari-bvdm")
        except Exception as e:  # napari wraps reader errors; show the reader's own reason
            cause = e
            while cause.__cause__ is not None and not isinstance(cause, InputError):
                cause = cause.__cause__
            self.set_status(f"could not open {Path(path).name}: {cause}", MISSING)
            return
        images = [layer.name for layer in layers if type(layer).__name__ == "Image"]
        labels = [layer.name for layer in layers if type(layer).__name__ == "Labels"]
        if not images:
            self.set_status(f"{Path(path).name} holds no image", MISSING)
            return
        tra = [n for n in labels if n.endswith("TRA")]
        self.select(images[0], (tra or labels or [None])[0])
        self.use_layers()

    def use_layers(self) -> None:
        image_layer = self.layer(self.image_combo.currentText())
        labels_name = self.labels_combo.currentText()
        labels_layer = None if labels_name == NONE else self.layer(labels_name)
        if image_layer is None:
            self.set_status("pick an image layer first (drop a TIFF or CTC folder on napari)", MISSING)
            return
        image, notice = grey_image(image_layer.data, bool(getattr(image_layer, "rgb", False)))
        labels = None if labels_layer is None else labels_layer.data
        first_axis = "z" if self.axis_combo.currentIndex() == 1 else "time"
        pixel_size = self.pixel_size.value() or None
        lineage = None
        label_videos: dict[str, Any] = {}
        seg_frames: list[int] = []
        if labels_layer is not None:
            info = layer_info(labels_layer.metadata)
            lineage = lineage_from_metadata(labels_layer.metadata)
            label_videos[str(info.get("kind", "labels"))] = labels
            # the other annotations of the same CTC sequence (SEG beside TRA, ...) come along
            for other in self.viewer.layers:
                o = layer_info(other.metadata) if type(other).__name__ == "Labels" else {}
                if other.name != labels_layer.name and o.get("source") and o.get("source") == info.get("source") \
                        and o.get("kind") and o["kind"] not in label_videos and o["kind"] != "RES":
                    label_videos[str(o["kind"])] = other.data
                    if o["kind"] == "SEG":
                        seg_frames = [int(f) for f in o.get("frames", [])]
            if info.get("kind") == "SEG":
                seg_frames = [int(f) for f in info.get("frames", [])]
            if "SEG" in label_videos and not seg_frames:
                seg_frames = list(range(int(labels.shape[0])))
        if lineage is None:
            lineage = lineage_from_metadata(image_layer.metadata)
        names = (image_layer.name, labels_name if labels_layer is not None else "")
        source = layer_info(image_layer.metadata).get("source") or (
            str(image_layer.source.path) if image_layer.source and image_layer.source.path else image_layer.name)

        def done(summary: dict[str, Any]) -> None:
            from ..io.video import Video

            if notice:
                summary = {**summary, "notices": [notice]}
            video = Video(image=image if image.ndim == 3 else image[None], labels=label_videos, lineage=lineage,
                          seg_frames=seg_frames, source=str(source),
                          meta={"image_layer": names[0], "labels_layer": names[1], "summary": summary,
                                **({"pixel_size": pixel_size} if pixel_size else {})})
            self.summary = summary
            self.state.image_layer, self.state.labels_layer = names
            self.state.video = video

        self.runner.start(lambda token: summarise_video(image, labels, lineage, token, first_axis=first_axis), done,
                          title="Reading layers")

    def segment(self) -> None:
        image_layer = self.layer(self.image_combo.currentText())
        if image_layer is None:
            self.set_status("pick an image layer to segment", MISSING)
            return
        image = image_layer.data
        kwargs = dict(sigma=self.sigma.value(), threshold=self.threshold.value() or None,
                      method=self.method.currentText(),
                      min_size=self.min_size.value(), min_distance=self.min_distance.value())
        name = f"{image_layer.name} segmentation"

        def done(labels) -> None:
            if name in self.viewer.layers:
                self.viewer.layers[name].data = labels
            else:
                self.viewer.add_labels(labels, name=name, metadata={"kind": "labels", "origin": "classical"})
            self.select(image_layer.name, name)
            self.set_status("classical segmentation added: check it, then 'Use these layers'", MISSING)

        self.runner.start(lambda token: classical_segmentation(image, token=token, **kwargs), done,
                          title="Segmenting")

    # ----------------------------------------------------------------------------- state
    def _on_video(self, video: Any) -> None:
        if video is None:
            self.summary_label.setText("No video picked yet.")
            self.set_status("missing: drop a real video (TIFF or CTC folder) and pick its layers", MISSING)
            return
        summary = video.meta.get("summary") if getattr(video, "meta", None) else None
        text = format_summary(summary) if summary else video.describe()
        px = (getattr(video, "meta", None) or {}).get("pixel_size")
        text += (f"\npixel size: {px:g} µm" if px else
                 "\npixel size: unknown (type it under Advanced settings if you know it)")
        self.summary_label.setText(text)
        if not video.labels:
            self.set_status("image only: segment it (below) or add a labels layer; shape and flow models "
                            "need labels", MISSING)
            self.seg_box.setVisible(True)
        else:
            self.set_status(f"ready: {self.state.image_layer} + {self.state.labels_layer}", READY)

    def params(self) -> dict[str, Any]:
        return {"sigma": self.sigma.value(), "threshold": self.threshold.value() or None,
                "method": self.method.currentText(),
                "min_size": self.min_size.value(), "min_distance": self.min_distance.value()}
