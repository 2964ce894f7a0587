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
    QSpinBox,
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
    #: Fine-tune's default time (minutes) and what a fine-tune of that length gained when measured
    finetune_minutes = 10
    finetune_gain = ""
    #: seconds per step of the default full training on a 2-core CPU (measured), for its up-front estimate
    cpu_seconds_per_step = 0.0

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent, loss_plot=True)
        self.train_missing = unavailable_reason(*self.train_api)
        self.load_missing = unavailable_reason(*self.load_api)
        # ---- Basic: the bundled model, or a short fine-tune of it on this video
        basic = QGridLayout()
        self.default_btn = QPushButton("Use bundled model")
        self.default_btn.setToolTip("the small model that ships with napari-bvdm (trained on a real sequence): "
                                    "ready at once, no training")
        self.finetune_btn = QPushButton(f"Fine-tune {self.finetune_minutes} min")
        self.finetune_btn.setToolTip("continue training the bundled model on this video for a fixed time (set the "
                                     "minutes under Advanced settings); the result is saved as the weights file")
        basic.addWidget(self.default_btn, 0, 0)
        basic.addWidget(self.finetune_btn, 0, 1)
        holder = QWidget()
        holder.setLayout(basic)
        basic.setContentsMargins(0, 0, 0, 0)
        self.add(holder)
        self.plan_label = QLabel("")
        self.plan_label.setWordWrap(True)
        self.add(self.plan_label)

        # ---- Advanced: device, weights file, fine-tune time, full training and its settings
        self.device_picker = DevicePicker(device=self.state.device)
        self.device_picker.device_changed.connect(self._device_changed)
        self.state.events.device.connect(self._state_device)
        self.add_advanced(self.device_picker)
        row = QHBoxLayout()
        self.path_edit = QLineEdit(self.settings.get(self.key, "weights_path", "") or self._default_path())
        self.path_edit.setToolTip("weights file (.safetensors) written by Fine-tune, Train and Save, read by Load")
        self.path_edit.editingFinished.connect(lambda: self.settings.set(self.key, "weights_path", self.path))
        browse = QPushButton("…")
        browse.setMaximumWidth(28)
        browse.setToolTip("choose the weights file")
        browse.clicked.connect(self._browse)
        row.addWidget(QLabel("Weights"))
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        holder = QWidget()
        holder.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        self.add_advanced(holder)
        self.minutes = QSpinBox()
        self.minutes.setRange(1, 24 * 60)
        self.minutes.setSuffix(" min")
        self.minutes.setValue(int(self.settings.get(self.key, "finetune_minutes", self.finetune_minutes)))
        self.minutes.setToolTip("how long Fine-tune trains (the model of the last finished step is kept)")
        self.minutes.valueChanged.connect(self._minutes_changed)
        mrow = QHBoxLayout()
        mrow.addWidget(QLabel("Fine-tune for"))
        mrow.addWidget(self.minutes, 1)
        mrow.setContentsMargins(0, 0, 0, 0)
        holder = QWidget()
        holder.setLayout(mrow)
        self.add_advanced(holder)

        self.form_holder = QWidget()
        self.form_layout = QHBoxLayout(self.form_holder)
        self.form_layout.setContentsMargins(0, 0, 0, 0)
        self.add_advanced(self.form_holder)

        grid = QGridLayout()
        self.train_btn = QPushButton("Train from scratch")
        self.resume_box = QCheckBox("resume")
        self.resume_box.setToolTip("resume from the checkpoint: continue a cancelled or crashed run (the checkpoint "
                                   "sits next to the weights file)")
        self.load_btn = QPushButton("Load weights…")
        self.load_btn.setToolTip("use a weights file trained earlier (.safetensors)")
        self.save_btn = QPushButton("Save weights")
        self.save_btn.setToolTip("save the model in use as the weights file above (asks before replacing a file)")
        grid.addWidget(self.train_btn, 0, 0)
        grid.addWidget(self.resume_box, 0, 1)
        grid.addWidget(self.load_btn, 1, 0)
        grid.addWidget(self.save_btn, 1, 1)
        self.child_box = QCheckBox("separate process")
        self.child_box.setToolTip("train in a separate process: frees all (GPU) memory when training ends and keeps "
                                  "napari fully responsive; costs a few seconds to start")
        self.child_box.setChecked(bool(self.settings.get(self.key, "child_process", True)))
        self.child_box.toggled.connect(lambda v: self.settings.set(self.key, "child_process", bool(v)))
        grid.addWidget(self.child_box, 2, 1)
        buttons = QWidget()
        buttons.setLayout(grid)
        grid.setContentsMargins(0, 0, 0, 0)
        self.add_advanced(buttons)
        self.train_btn.clicked.connect(lambda: self.train())
        self.finetune_btn.clicked.connect(self.fine_tune)
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
    def _train_spec(self, resume: bool, extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:  # pragma: no cover
        """``("module:function", kwargs)`` of a Qt-free training job that writes the weights file; ``extra``
        overrides training settings (fine-tuning: ``init`` and ``max_seconds``)."""
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
        return [self.train_btn, self.finetune_btn, self.load_btn, self.save_btn, self.default_btn, self.child_box]

    def _on_running_changed(self, running: bool) -> None:
        super()._on_running_changed(running)
        if not running:
            self._refresh()

    def _refresh(self, *_a: Any) -> None:
        model = getattr(self.state, self.model_attr)
        self.train_btn.setEnabled(self.train_missing is None and self.state.video is not None
                                  and not self.runner.running)
        self.finetune_btn.setEnabled(self.train_btn.isEnabled())
        self.train_btn.setToolTip(self.train_missing or ("pick the data first" if self.state.video is None else
                                                          "train a new model from random weights on the Data step's "
                                                          "video: " + self._full_estimate()))
        self._update_plan()
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

    def _minutes_changed(self, minutes: int) -> None:
        self.settings.set(self.key, "finetune_minutes", int(minutes))
        self.finetune_btn.setText(f"Fine-tune {minutes} min")
        self._update_plan()

    def _full_estimate(self) -> str:
        """The full training's length: steps, and the time on a 2-core CPU estimated from a measured rate."""
        form = getattr(self, "train_form", None)
        try:
            steps = int(form.values().get("steps", 0)) if form is not None else 0
        except (TypeError, ValueError):
            steps = 0
        if not steps or not self.cpu_seconds_per_step:
            return "its time is shown once it runs"
        from ._jobs import format_eta

        return (f"{steps} steps, about {format_eta(steps * self.cpu_seconds_per_step)} on a 2-core CPU, minutes on "
                "a GPU")

    def _update_plan(self) -> None:
        """What the two Basic buttons give, in plain words."""
        minutes = self.minutes.value()
        text = (f"Use bundled model: ready at once. Fine-tune: {minutes} min on this video, starting from the "
                f"bundled model, saved as {Path(self.path).name}.")
        if self.finetune_gain and minutes == self.finetune_minutes:
            text += f" Measured: {self.finetune_gain}."
        text += f" Train from scratch (Advanced): {self._full_estimate()}."
        self.plan_label.setText(text)

    # ------------------------------------------------------------------ actions
    def finetune_seconds(self) -> float:
        return 60.0 * self.minutes.value()

    def fine_tune(self) -> None:
        """Train the bundled model further on this video for the chosen minutes."""
        self.train(fine_tune=True)

    def train(self, fine_tune: bool = False) -> None:
        if self.train_missing:
            self.set_status(f"unavailable: {self.train_missing}", UNAVAILABLE)
            return
        if self.state.video is None:
            self.set_status("missing: pick the real video in the Data step first", MISSING)
            return
        resume = self.resume_box.isChecked() and not fine_tune
        path = self.path
        if not path.endswith(".safetensors"):
            self.set_status("the weights file must end in .safetensors", MISSING)
            return
        if not resume and not self.confirm_overwrite(path, f"the newly trained {self.title.lower()}"):
            return
        extra = {"init": "bundled", "max_seconds": self.finetune_seconds()} if fine_tune else {}
        target, kwargs = self._train_spec(resume, extra)  # forms validated here: a bad value names its field
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

        title = f"Fine-tuning {self.title.lower()}" if fine_tune else f"Training {self.title.lower()}"
        self.runner.start(factory, done, title=title, clear_plot=not resume)

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
