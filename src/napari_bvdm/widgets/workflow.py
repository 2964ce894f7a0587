"""The one-entry workflow "BVDM synthesis": Data -> Shape -> Texture -> Flow -> Generate -> Export.

Each step is the same widget that is also reachable on its own from the Plugins menu; here they sit
in collapsible sections whose headers say whether the step is ready and what is missing. One device
picker at the top applies to every step, and the whole run's settings can be saved to / loaded from
one JSON file that ``bvdm ... --settings FILE`` accepts too.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ._base import READY, UNAVAILABLE, StepWidget
from ._device import DevicePicker
from ._section import Section
from ._settings import gui_settings, load_run_settings, save_run_settings
from ._state import STEPS, get_state

__all__ = ["WorkflowWidget", "run_settings", "apply_run_settings"]

_SYMBOL = {READY: "✔", UNAVAILABLE: "✖"}


def _step_classes() -> dict[str, type]:
    from .data_step import DataWidget
    from .export_step import ExportWidget
    from .flow_step import FlowModelWidget
    from .generate_step import GenerateWidget
    from .shape_step import ShapeModelWidget
    from .texture_step import TextureModelWidget

    return {"data": DataWidget, "shape": ShapeModelWidget, "texture": TextureModelWidget, "flow": FlowModelWidget,
            "generate": GenerateWidget, "export": ExportWidget}


def run_settings(steps: dict[str, StepWidget], device: str) -> dict[str, Any]:
    """The run-settings sections of every step, in the layout the ``bvdm`` subcommands read.

    ``texture`` -> ``{"model": ..., "train": ...}`` (``bvdm train-texture``), ``train_flow`` ->
    FlowTrainConfig (``bvdm train-flow``), ``synthesis`` (``bvdm generate``), ``fit_shapes`` /
    ``simulate_masks`` (shape model), ``generate``, ``export``, ``data`` (GUI); plus ``gui`` (weights
    paths) and ``device``.
    """
    out: dict[str, Any] = {}
    gui: dict[str, Any] = {}
    tex = steps.get("texture")
    if tex is not None and tex.train_form is not None:
        mc, tc = tex._configs()
        out["texture"] = {"model": mc.to_dict(), "train": tc.replace(device=device).to_dict()}
        gui["texture_weights"] = tex.path
    flow = steps.get("flow")
    if flow is not None and flow.train_form is not None:
        cfg = flow.train_form.config(device=device, model=flow.model_form.config().to_dict())
        out["train_flow"] = cfg.to_dict()
        gui["flow_weights"] = flow.path
    shape = steps.get("shape")
    if shape is not None and shape.fit_form is not None:
        out["fit_shapes"] = shape.fit_form.config().to_dict()
        out["simulate_masks"] = shape.preview_form.config().to_dict()
    for key in ("data", "generate", "export"):
        if key in steps:
            out[key] = steps[key].params()
    if "generate" in steps:
        from ._recipe import GenerateParams

        out["config"] = GenerateParams.from_dict(out["generate"]).to_config().to_dict()  # `bvdm generate --config`
    out["gui"] = gui
    return out


def apply_run_settings(steps: dict[str, StepWidget], data: dict[str, Any]) -> None:
    """Put a run-settings file's values into the step widgets (unknown sections are ignored)."""
    tex = steps.get("texture")
    gui = data.get("gui", {})
    if tex is not None and tex.train_form is not None and "texture" in data:
        sec = data["texture"]
        tex.train_form.set_values(sec.get("train", {}))
        model = dict(sec.get("model", {}))
        tex.unet_form.set_values(model.pop("unet", {}))
        tex.model_form.set_values(model)
    if tex is not None and gui.get("texture_weights"):
        tex.set_path(gui["texture_weights"])
    flow = steps.get("flow")
    if flow is not None and flow.train_form is not None and "train_flow" in data:
        sec = dict(data["train_flow"])
        flow.model_form.set_values(sec.pop("model", {}))
        flow.train_form.set_values(sec)
    if flow is not None and gui.get("flow_weights"):
        flow.set_path(gui["flow_weights"])
    shape = steps.get("shape")
    if shape is not None and shape.fit_form is not None:
        shape.fit_form.set_values(data.get("fit_shapes", {}))
        shape.preview_form.set_values(data.get("simulate_masks", {}))
    for key in ("generate", "export"):
        if key in steps and key in data:
            steps[key].set_params(data[key])


def _ancestors(widget: QWidget, stop: QWidget) -> list[QWidget]:
    out, p = [], widget.parentWidget()
    while p is not None and p is not stop:
        out.append(p)
        p = p.parentWidget()
    return out


class WorkflowWidget(QWidget):
    """Dock widget "BVDM synthesis": the ordered workflow in one place."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = get_state(napari_viewer)
        settings = gui_settings()
        self.state.device = settings.get("workflow", "device", self.state.device) or "auto"

        top = QVBoxLayout()
        intro = QLabel("From one real video to a synthetic, annotated training set. Work through the steps "
                       "in order; each header says whether it is ready (✔) or what it still needs.")
        intro.setWordWrap(True)
        top.addWidget(intro)
        self.device_picker = DevicePicker(device=self.state.device)
        self.device_picker.device_changed.connect(self._device_changed)
        self.state.events.device.connect(self._state_device)
        row = QHBoxLayout()
        self.save_btn = QPushButton("Save run settings…")
        self.save_btn.setToolTip("one JSON file with every step's settings, to repeat this run later (or on a "
                                 "cluster with the bvdm command)")
        self.load_btn = QPushButton("Load run settings…")
        self.load_btn.setToolTip("put the settings of a saved run into every step")
        row.addWidget(self.save_btn)
        row.addWidget(self.load_btn)
        row.setContentsMargins(0, 0, 0, 0)
        buttons = QWidget()
        buttons.setLayout(row)
        self.general = Section("Device and run settings")
        self.general.setObjectName("bvdm-advanced")
        self.general.setToolTip(f"where training and generation run (now: {self.state.device}); save or load every "
                                "step's settings")
        self.general.addWidget(self.device_picker)
        self.general.addWidget(buttons)
        top.addWidget(self.general)
        self.save_btn.clicked.connect(lambda: self.save_settings())
        self.load_btn.clicked.connect(lambda: self.load_settings())

        self.steps: dict[str, StepWidget] = {}
        self.sections: dict[str, Section] = {}
        classes = _step_classes()
        for key, title, _attr in STEPS:
            w = classes[key](napari_viewer)
            if hasattr(w, "device_picker"):
                w.device_picker.setVisible(False)  # the workflow's picker applies to every step
            w.layout().setContentsMargins(0, 4, 0, 4)  # the section already indents it
            sec = Section(title)
            sec.addWidget(w)
            self.steps[key] = w
            self.sections[key] = sec
            top.addWidget(sec)
            w.status_changed.connect(lambda colour, text, k=key: self._update_header(k))
            self._update_header(key)
        top.addStretch(1)
        inner = QWidget()
        inner.setLayout(top)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        self.scroll = scroll
        # room for the widest step and the vertical scroll bar: the dock scrolls, never clips
        scroll.setMinimumWidth(inner.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width()
                               + 2 * scroll.frameWidth())
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(scroll)
        self.sections["data"].expand(animate=False)
        from ._warmup import release, warm_up

        if warm_up() is not None:
            self.destroyed.connect(lambda *_: release())  # not a method: the widget is gone by then

    # ------------------------------------------------------------------ status headers
    def _update_header(self, key: str) -> None:
        w = self.steps[key]
        title = next(t for k, t, _a in STEPS if k == key)
        mark = _SYMBOL.get(w.status_colour, "•")
        text = w.status_text.split(":", 1)[0] if w.status_text else ""
        sec = self.sections[key]
        sec.setText(f"{mark} {title} — {text}" if text else f"{mark} {title}")
        sec.setToolTip(w.status_text)
        if sec.isExpanded():  # the step's text changed: let the open section take its new height
            QTimer.singleShot(0, lambda: sec.expand(animate=False) if sec.isExpanded() else None)

    def step_ready(self, key: str) -> bool:
        return self.steps[key].status_colour == READY

    def header(self, key: str) -> str:
        return self.sections[key].text()

    def show_step(self, key: str, widget: QWidget | None = None) -> None:
        """Expand one step, collapse the others, scroll ``widget`` (default: the step) into view."""
        for k, sec in self.sections.items():
            (sec.expand if k == key else sec.collapse)(animate=False)
        self.scroll.ensureWidgetVisible(widget or self.sections[key], 0, 0)

    def control_counts(self) -> dict[str, int]:
        """Controls a user can operate: ``basic`` (shown with every Advanced section closed) and ``advanced``.

        A control is a button, check box, combo box, spin box or text field that is not hidden; the headers
        of the sections themselves and the progress bar's Cancel button are not counted.
        """
        from qtpy.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit

        counts = {"basic": 0, "advanced": 0}
        skip = {id(b) for sec in [*self.sections.values(), *self._advanced_sections()]
                for b in sec.findChildren(QAbstractButton) if b.parent() is sec}
        skip |= {id(b) for w in self.steps.values() for b in w.runner.findChildren(QAbstractButton)}
        for kind in (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit):
            for w in self.findChildren(kind):
                if id(w) in skip or w.isHidden() or isinstance(w.parent(), (QComboBox, QAbstractSpinBox, QLineEdit)):
                    continue
                if not all(p.isHidden() is False for p in _ancestors(w, self)):
                    continue
                advanced = any(p.objectName() == "bvdm-advanced" for p in _ancestors(w, self))
                counts["advanced" if advanced else "basic"] += 1
        return counts

    def _advanced_sections(self) -> list[QWidget]:
        return [self.general, *(w.advanced for w in self.steps.values() if w.advanced is not None)]

    # ------------------------------------------------------------------ device and settings
    def _device_changed(self, device: str) -> None:
        self.state.device = device
        gui_settings().set("workflow", "device", device)

    def _state_device(self, device: str) -> None:
        if self.device_picker.device != device:
            self.device_picker.set_device(device)

    def save_settings(self, path: str | None = None) -> str | None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save run settings",
                                                  gui_settings().get("workflow", "settings_file", ""),
                                                  "run settings (*.json)")
            if not path:
                return None
        gui_settings().set("workflow", "settings_file", str(path))
        save_run_settings(path, run_settings(self.steps, self.state.device), device=self.state.device)
        return str(path)

    def load_settings(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load run settings",
                                                  gui_settings().get("workflow", "settings_file", ""),
                                                  "run settings (*.json)")
            if not path:
                return
        data = load_run_settings(path)
        apply_run_settings(self.steps, data)
        if data.get("device"):
            self.device_picker.set_device(str(data["device"]))
