"""Export step: N synthetic videos as a CTC dataset, validated, with a button to open the result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStyle,
    QWidget,
)

from ._base import MISSING, READY, UNAVAILABLE, StepWidget, unavailable_reason
from ._layers import tracks_layer_data
from ._recipe import GenerateParams, export_job, missing_for_generation

__all__ = ["ExportWidget"]


class ExportWidget(StepWidget):
    """Dock widget "Export CTC": one click writes N videos (the Generate step's settings)."""

    key = "export"
    title = "Export CTC"

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.missing = unavailable_reason("napari_bvdm.synthesis.export", ("export_dataset",)) or \
            unavailable_reason("napari_bvdm.io.validator", ("validate_ctc", "format_report"))
        form = QFormLayout()
        self.folder = QLineEdit(self.settings.get("export", "folder", str(Path.home() / "bvdm-synthetic")))
        self.folder.setToolTip("dataset folder: videos 01, 02, ... with _GT/SEG and _GT/TRA, plus synthesis.json")
        self.folder.editingFinished.connect(lambda: self.settings.set("export", "folder", self.folder.text()))
        browse = self.folder.addAction(self.style().standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon),
                                       QLineEdit.ActionPosition.TrailingPosition)
        browse.setToolTip("choose the dataset folder")
        browse.triggered.connect(self._browse)
        holder = self.folder
        form.addRow("Folder", holder)
        self.n_videos = QSpinBox()
        self.n_videos.setRange(1, 99)
        self.n_videos.setValue(int(self.settings.get("export", "n_videos", 2)))
        self.n_videos.valueChanged.connect(lambda v: self.settings.set("export", "n_videos", v))
        form.addRow("Videos", self.n_videos)
        self.n_videos.setToolTip("how many synthetic videos (01, 02, ...) to write; each has its own cells and "
                                 "motion")
        box = QWidget()
        box.setLayout(form)
        self.add(box)
        self.overwrite = QCheckBox("replace videos already there")
        self.overwrite.setToolTip("replace videos of the same numbers already in the folder; without it they are "
                                  "kept when they were made with the same settings, else Export stops and says so")
        self.add_advanced(self.overwrite)
        self.pairs_combo = QComboBox()
        self.pairs_combo.addItem("CTC only", "")
        self.pairs_combo.addItem("CTC + Cellpose training pairs", "cellpose")
        self.pairs_combo.addItem("CTC + StarDist training pairs", "stardist")
        self.pairs_combo.addItem("CTC + OME-Zarr (with the lineage as a GEFF graph)", "ome-zarr")
        self.pairs_combo.setToolTip("also write image/mask pairs for training Cellpose (NAME.tif + "
                                    "NAME_masks.tif) or StarDist (images/ + masks/), or the videos as OME-Zarr with "
                                    "lineage tables, into a folder beside the dataset named <folder>-cellpose, "
                                    "-stardist or -ome-zarr (replaced on every export)")
        self.pairs_combo.setCurrentIndex(max(0, self.pairs_combo.findData(self.settings.get("export", "pairs", ""))))
        self.pairs_combo.currentIndexChanged.connect(
            lambda _i: self.settings.set("export", "pairs", self.pairs_combo.currentData()))
        self.add_advanced(self.pairs_combo)
        note = QLabel("Frames, size, seed and painter come from the Generate step.")
        note.setWordWrap(True)
        self.add_advanced(note)
        self.export_btn = QPushButton("Export CTC dataset")
        self.export_btn.setToolTip("write the videos with their labels (SEG, TRA, man_track.txt), check them, and "
                                   "save the settings as synthesis.json in the folder")
        self.open_btn = QPushButton("Open the result in napari")
        self.open_btn.setToolTip("open the exported dataset's first video with its labels and tracks")
        self.open_btn.setEnabled(False)
        self.add(self.export_btn)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.add(self.result_label)
        self.add(self.open_btn)
        self.finish_layout()
        self.export_btn.clicked.connect(self.export)
        self.open_btn.clicked.connect(lambda: self.open_result())
        for ev in ("shape_model", "texture_model", "flow_model", "video", "export_path"):
            getattr(self.state.events, ev).connect(self._refresh)
        self.violations: list[Any] | None = None
        self._refresh()

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export folder", self.folder.text())
        if path:
            self.set_folder(path)

    def set_folder(self, path: str | Path) -> None:
        self.folder.setText(str(path))
        self.settings.set("export", "folder", str(path))

    def generate_params(self) -> GenerateParams:
        """The settings of the run to export: the last generated or previewed video's, else the Generate step's."""
        generated = self.state.generated
        if isinstance(generated, dict) and generated.get("params"):
            return GenerateParams.from_dict(generated["params"])
        return GenerateParams.from_dict(self.settings.section("generate"))

    def run_buttons(self) -> list[QWidget]:
        return [self.export_btn]

    def _on_running_changed(self, running: bool) -> None:
        super()._on_running_changed(running)
        if not running:
            self._refresh()

    def _refresh(self, *_a: Any) -> None:
        try:
            lacking = missing_for_generation(self.state, self.generate_params())
        except ValueError as e:
            lacking = [str(e)]
        self.export_btn.setEnabled(self.missing is None and not lacking and not self.runner.running)
        self.open_btn.setEnabled(bool(self.state.export_path))
        if self.missing:
            self.set_status(f"unavailable: {self.missing}", UNAVAILABLE)
        elif self.state.export_path:
            self.set_status(f"ready: exported to {self.state.export_path}", READY)
        elif lacking:
            self.set_status("missing: " + ", ".join(lacking), MISSING)
        else:
            self.set_status("ready to export", MISSING)

    def export(self) -> None:
        from ..io.validator import format_report, validate_ctc

        params = self.generate_params()
        out = self.folder.text().strip()
        n = self.n_videos.value()
        overwrite = self.overwrite.isChecked()
        state = self.state

        pairs = self.pairs_combo.currentData() or ""

        def job(token):
            folder = yield from export_job(state, params, out, n, overwrite=overwrite, cancel=token)
            violations = validate_ctc(folder)
            written = None
            if pairs and not violations:
                target = Path(folder).with_name(f"{Path(folder).name}-{pairs}")
                if pairs == "ome-zarr":
                    from ..io.ome_zarr_export import export_ome_zarr

                    written = yield from export_ome_zarr(folder, target, overwrite=True, cancel=token)
                else:
                    from ..io.training_pairs import export_training_pairs

                    written = yield from export_training_pairs(folder, target, pairs, overwrite=True, cancel=token)
            return folder, violations, written

        def done(result: tuple[Path, list, Path | None]) -> None:
            folder, violations, written = result
            self.violations = violations
            self.result_label.setText(format_report(violations, folder)
                                      + (f"\n{pairs}: {written}" if written else ""))
            if not violations:
                self.state.export_path = str(folder)
            self._refresh()

        self.runner.start(job, done, title="Exporting")

    def open_result(self, sequence: str = "01") -> None:
        from ..io.readers import read_video

        path = Path(self.state.export_path) / sequence

        def done(video: Any) -> None:
            self.viewer.add_image(video.image, name=f"exported {sequence}")
            main = video.main_labels()
            if main is not None:
                self.viewer.add_labels(main[1], name=f"exported {sequence} {main[0]}",
                                       metadata={"kind": main[0], "lineage": video.lineage})
                data, graph = tracks_layer_data(main[1], video.lineage)
                if len(data):
                    self.viewer.add_tracks(data, graph=graph, name=f"exported {sequence} tracks")

        self.runner.start(lambda token: read_video(path), done, title="Opening the export")

    def params(self) -> dict[str, Any]:
        return {"folder": self.folder.text(), "n_videos": self.n_videos.value()}

    def set_params(self, values: dict[str, Any]) -> None:
        if "folder" in values:
            self.set_folder(values["folder"])
        if "n_videos" in values:
            self.n_videos.setValue(int(values["n_videos"]))
