"""Common frame of every BVDM step widget: viewer, shared state, status line, job runner."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QLabel, QMessageBox, QVBoxLayout, QWidget

from ._jobs import JobRunner
from ._settings import gui_settings
from ._state import WorkflowState, get_state

__all__ = ["StepWidget", "unavailable_reason"]

READY = "#4caf50"
MISSING = "#e0a030"
UNAVAILABLE = "#9e9e9e"


def unavailable_reason(module: str, names: tuple[str, ...]) -> str | None:
    """``None`` when ``module`` provides every name in ``names``, else why the step cannot run yet."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        return f"{module} is not available in this installation ({e})"
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        return f"{module} does not provide {', '.join(missing)} in this version"
    return None


class StepWidget(QWidget):
    """Base class: ``napari_viewer`` in, shared :class:`WorkflowState`, status line, one JobRunner.

    Subclasses set ``key`` (a step of :data:`~._state.STEPS`), build their controls in
    ``_build()`` and call :meth:`set_status`.
    """

    key = ""
    title = ""
    status_changed = Signal(str, str)  # (colour, text)

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None, *, loss_plot: bool = False) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state: WorkflowState = get_state(napari_viewer)
        self.settings = gui_settings()
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.runner = JobRunner(loss_plot=loss_plot)
        self.runner.running_changed.connect(self._on_running_changed)
        self._layout = QVBoxLayout(self)
        self._layout.addWidget(self.status_label)
        self.status_text = ""
        self.status_colour = MISSING
        self.advanced: Any = None  # the collapsed "Advanced settings" section, made by add_advanced

    # ---------------------------------------------------------------- helpers for subclasses
    def set_status(self, text: str, colour: str = MISSING) -> None:
        self.status_text = text
        self.status_colour = colour
        self.status_label.setText(f"<span style='color:{colour}'>●</span> {text}")
        self.status_changed.emit(colour, text)
        QTimer.singleShot(0, self.fit_labels)

    def fit_labels(self) -> None:
        """Give every word-wrapped label the height its text needs at its width (Qt's layouts in a scrolling
        dock size them for a wider line and cut their last lines off)."""
        for label in self.findChildren(QLabel):
            if label.wordWrap() and label.width() > 0:
                label.setMinimumHeight(label.heightForWidth(label.width()) if label.text() else 0)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.fit_labels()

    def confirm_overwrite(self, path: str, what: str) -> bool:
        """``True`` when ``path`` does not exist yet or the user agrees to replace it (a dialog asks)."""
        from pathlib import Path

        if not Path(path).exists():
            return True
        answer = QMessageBox.question(
            self, "Replace file?", f"{Path(path).name} already exists in {Path(path).parent}.\n\n"
            f"Replace it with {what}? The file's current content is lost.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            self.set_status(f"not saved: {Path(path).name} exists; choose another file name in the field above",
                            MISSING)
            return False
        return True

    def add(self, widget: QWidget) -> QWidget:
        self._layout.addWidget(widget)
        return widget

    def add_advanced(self, widget: QWidget) -> QWidget:
        """Put ``widget`` into this step's "Advanced settings" section (collapsed until opened)."""
        if self.advanced is None:
            from ._section import Section

            self.advanced = Section("Advanced settings")
            self.advanced.setToolTip("every other setting of this step; the defaults suit a first run")
            self.advanced.setObjectName("bvdm-advanced")
        self.advanced.addWidget(widget)
        return widget

    def finish_layout(self) -> None:
        self._layout.addWidget(self.runner)
        if self.advanced is not None:
            self._layout.addWidget(self.advanced)
        self._layout.addStretch(1)

    def _on_running_changed(self, running: bool) -> None:
        for w in self.run_buttons():
            w.setEnabled(not running)

    def run_buttons(self) -> list[QWidget]:
        """Buttons disabled while a job runs (override)."""
        return []

    def layer_names(self, kind: str) -> list[str]:
        """Names of viewer layers of a type: ``"image"``, ``"labels"`` or ``"tracks"``."""
        out = []
        for layer in self.viewer.layers:
            if type(layer).__name__.lower() == kind:
                out.append(layer.name)
        return out

    def layer(self, name: str):
        try:
            return self.viewer.layers[name]
        except (KeyError, ValueError):
            return None

    def params(self) -> dict[str, Any]:
        """This step's parameters for a run-settings file (override)."""
        return {}

    def set_params(self, values: dict[str, Any]) -> None:
        """Apply parameters from a run-settings file (override)."""
