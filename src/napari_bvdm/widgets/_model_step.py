"""Shared frame of the trainable steps (texture, flow): weights file, Train / Resume / Cancel,
Load / Save / bundled default, device picker, live loss plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from ._base import MISSING, READY, UNAVAILABLE, StepWidget, unavailable_reason
from ._child import child_job
from ._device import DevicePicker
from ._recipe import BUNDLED_DEFAULT

__all__ = ["ModelStepWidget"]


class ModelStepWidget(StepWidget):
    """Base of steps whose result is a model file. Subclasses fill the hooks below."""

    #: state attributes holding the model and its file
    model_attr = ""
    path_attr = ""
    #: (module, names) that must exist for training, for loading
    train_api: tuple[str, tuple[str, ...]] = ("", ())
    load_api: tuple[str, tuple[str, ...]] = ("", ())
    default_name = "model.safetensors"

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent, loss_plot=True)
        self.train_missing = unavailable_reason(*self.train_api)
        self.load_missing = unavailable_reason(*self.load_api)
        self.device_picker = DevicePicker(device=self.state.device)
        self.device_picker.device_changed.connect(self._device_changed)
        self.state.events.device.connect(self._state_device)
        self.add(self.device_picker)

        row = QHBoxLayout()
        self.path_edit = QLineEdit(self.settings.get(self.key, "weights_path", "") or self._default_path())
        self.path_edit.setToolTip("weights file (.safetensors) written by Train / Save and read by Load")
        self.path_edit.editingFinished.connect(lambda: self.settings.set(self.key, "weights_path", self.path))
        browse = QPushButton("…")
        browse.setMaximumWidth(28)
        browse.clicked.connect(self._browse)
        row.addWidget(QLabel("Weights"))
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        holder = QWidget()
        holder.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        self.add(holder)

        self.form_holder = QWidget()
        self.form_layout = QHBoxLayout(self.form_holder)
        self.form_layout.setContentsMargins(0, 0, 0, 0)
        self.add(self.form_holder)

        grid = QGridLayout()
        self.train_btn = QPushButton("Train")
        self.resume_box = QCheckBox("resume")
        self.resume_box.setToolTip("resume from the checkpoint: continue a cancelled or crashed run (the checkpoint "
                                   "sits next to the weights file)")
        self.load_btn = QPushButton("Load weights")
        self.save_btn = QPushButton("Save weights")
        self.default_btn = QPushButton("Use default model")
        self.default_btn.setToolTip("the small model bundled with napari-bvdm (trained on a real sequence)")
        grid.addWidget(self.train_btn, 0, 0)
        grid.addWidget(self.resume_box, 0, 1)
        grid.addWidget(self.load_btn, 1, 0)
        grid.addWidget(self.save_btn, 1, 1)
        grid.addWidget(self.default_btn, 2, 0)
        self.child_box = QCheckBox("separate process")
        self.child_box.setToolTip("train in a separate process: frees all (GPU) memory when training ends and keeps "
                                  "napari fully responsive; costs a few seconds to start")
        self.child_box.setChecked(bool(self.settings.get(self.key, "child_process", True)))
        self.child_box.toggled.connect(lambda v: self.settings.set(self.key, "child_process", bool(v)))
        grid.addWidget(self.child_box, 2, 1)
        buttons = QWidget()
        buttons.setLayout(grid)
        grid.setContentsMargins(0, 0, 0, 0)
        self.add(buttons)
        self.train_btn.clicked.connect(self.train)
        self.load_btn.clicked.connect(lambda: self.load())
        self.save_btn.clicked.connect(lambda: self.save())
        self.default_btn.clicked.connect(self.use_default)
        self.model_info = QLabel("")
        self.model_info.setWordWrap(True)
        self.add(self.model_info)
        self.finish_layout()
        getattr(self.state.events, self.model_attr).connect(self._refresh)
        self.state.events.video.connect(self._refresh)

    # ------------------------------------------------------------------ hooks for subclasses
    def _train_spec(self, resume: bool) -> tuple[str, dict[str, Any]]:  # pragma: no cover - abstract
        """``("module:function", kwargs)`` of a Qt-free training job that writes the weights file."""
        raise NotImplementedError

    def _load_model(self, path: str):  # pragma: no cover - abstract
        raise NotImplementedError

    def _default_model(self):
        raise NotImplementedError

    def _describe(self, model: Any) -> str:
        return type(model).__name__

    # ------------------------------------------------------------------ helpers
    @property
    def path(self) -> str:
        return self.path_edit.text().strip()

    def set_path(self, path: str | Path) -> None:
        self.path_edit.setText(str(path))
        self.settings.set(self.key, "weights_path", str(path))

    def _default_path(self) -> str:
        return str(Path.home() / "napari-bvdm" / self.default_name)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Weights file", self.path, "safetensors (*.safetensors)")
        if path:
            self.set_path(path)

    def _device_changed(self, device: str) -> None:
        self.state.device = device
        self.settings.set("workflow", "device", device)

    def _state_device(self, device: str) -> None:
        if self.device_picker.device != device:
            self.device_picker.set_device(device)

    def run_buttons(self) -> list[QWidget]:
        return [self.train_btn, self.load_btn, self.save_btn, self.default_btn, self.child_box]

    def _on_running_changed(self, running: bool) -> None:
        super()._on_running_changed(running)
        if not running:
            self._refresh()

    def _refresh(self, *_a: Any) -> None:
        model = getattr(self.state, self.model_attr)
        self.train_btn.setEnabled(self.train_missing is None and self.state.video is not None
                                  and not self.runner.running)
        self.train_btn.setToolTip(self.train_missing or ("pick the data first" if self.state.video is None else
                                                          "train on the Data step's video"))
        self.load_btn.setEnabled(self.load_missing is None and not self.runner.running)
        self.save_btn.setEnabled(model is not None and not self.runner.running)
        self.default_btn.setEnabled(self.load_missing is None and not self.runner.running)
        if model is not None:
            where = getattr(self.state, self.path_attr) or "in memory only (not saved)"
            self.model_info.setText(self._describe(model))
            self.set_status(f"ready: {where}", READY)
        elif self.train_missing and self.load_missing:
            self.set_status(f"unavailable: {self.load_missing}", UNAVAILABLE)
        else:
            self.set_status("missing: train on the data, or load a weights file / the default model", MISSING)

    # ------------------------------------------------------------------ actions
    def train(self) -> None:
        if self.train_missing:
            self.set_status(f"unavailable: {self.train_missing}", UNAVAILABLE)
            return
        if self.state.video is None:
            self.set_status("missing: pick the real video in the Data step first", MISSING)
            return
        resume = self.resume_box.isChecked()
        path = self.path
        if not path.endswith(".safetensors"):
            self.set_status("the weights file must end in .safetensors", MISSING)
            return
        if not resume and not self.confirm_overwrite(path, f"the newly trained {self.title.lower()}"):
            return
        target, kwargs = self._train_spec(resume)  # forms validated here: a bad value names its field
        in_child = self.child_box.isChecked()
        load = self._load_model

        def factory(token):
            if in_child:
                inner = child_job(target, kwargs, token)
            else:
                import importlib

                module, name = target.split(":")
                inner = getattr(importlib.import_module(module), name)(cancel=token, **kwargs)

            def job():
                written = yield from inner
                return load(written)

            return job()

        def done(model: Any) -> None:
            setattr(self.state, self.path_attr, path)
            setattr(self.state, self.model_attr, model)

        self.runner.start(factory, done, title=f"Training {self.title.lower()}", clear_plot=not resume)

    def load(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load weights", self.path, "safetensors (*.safetensors)")
            if not path:
                return
        self.set_path(path)

        def done(model: Any) -> None:
            setattr(self.state, self.path_attr, str(path))
            setattr(self.state, self.model_attr, model)

        self.runner.start(lambda token: self._load_model(str(path)), done, title=f"Loading {self.title.lower()}")

    def use_default(self) -> None:
        def done(model: Any) -> None:
            setattr(self.state, self.path_attr, BUNDLED_DEFAULT)
            setattr(self.state, self.model_attr, model)

        self.runner.start(lambda token: self._default_model(), done, title=f"Loading default {self.title.lower()}")

    def save(self, path: str | None = None) -> None:
        model = getattr(self.state, self.model_attr)
        if model is None:
            return
        path = path or self.path
        if not path.endswith(".safetensors"):
            self.set_status("the weights file must end in .safetensors", MISSING)
            return
        if str(getattr(self.state, self.path_attr) or "") == str(path):
            self.set_status(f"ready: already saved as {path}", READY)
            return
        if not self.confirm_overwrite(path, f"the {self.title.lower()} in use"):
            return
        self.set_path(path)

        def done(saved: Any) -> None:
            setattr(self.state, self.path_attr, str(saved))
            self._refresh()

        self.runner.start(lambda token: model.save(path), done, title=f"Saving {self.title.lower()}")

    # ------------------------------------------------------------------ video access
    def _video_arrays(self) -> tuple[Any, Any, Any]:
        """(image, dense labels, tracks labels or None) of the Data step's video."""
        import numpy as np

        video = self.state.video
        dense = video.dense_labels()
        if dense is None:
            from ..io.video import InputError

            raise InputError("the picked video has no labels: add or segment labels in the Data step")
        tra = video.labels.get("TRA")
        image = None if video.image is None else np.asarray(video.image)
        return image, np.asarray(dense[1]), None if tra is None else np.asarray(tra)
