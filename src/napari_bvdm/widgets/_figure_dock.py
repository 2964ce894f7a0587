"""Figures (comparison plots, texture previews) in their own dock widget beside the data, never as layers."""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

__all__ = ["FigurePanel", "show_figure"]


class FigurePanel(QWidget):
    """A scrollable picture with a caption; ``set_image`` takes an (H, W) or (H, W, 3) uint8 array."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        scroll = QScrollArea()
        scroll.setWidget(self.picture)
        scroll.setWidgetResizable(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.caption)
        layout.addWidget(scroll, 1)
        self.image: np.ndarray | None = None

    def set_image(self, image: np.ndarray, caption: str = "") -> None:
        arr = np.ascontiguousarray(image)
        if arr.dtype != np.uint8:
            lo, hi = np.percentile(arr, (0.5, 99.5)) if arr.size else (0, 1)
            arr = np.clip((arr.astype(np.float32) - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)
        self.image = arr
        h, w = arr.shape[:2]
        if arr.ndim == 2:
            qimg = QImage(arr.data, w, h, w, QImage.Format.Format_Grayscale8)
        else:
            arr = np.ascontiguousarray(arr[..., :3])
            self.image = arr
            qimg = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self.picture.setPixmap(QPixmap.fromImage(qimg.copy()))
        self.caption.setText(caption)


def show_figure(viewer: Any, title: str, image: np.ndarray, caption: str = "") -> FigurePanel:
    """Show ``image`` in the dock widget ``title`` of the viewer's window (created once, then updated).

    Without a window (a headless viewer model) the panel is kept, unshown, so callers and tests see it.
    """
    panels: dict[str, FigurePanel] = viewer.__dict__.setdefault("_bvdm_figures", {}) if hasattr(
        viewer, "__dict__") else {}
    panel = panels.get(title)
    if panel is None:
        panel = FigurePanel()
        panels[title] = panel
        window = getattr(viewer, "window", None)
        if window is not None and hasattr(window, "add_dock_widget"):
            window.add_dock_widget(panel, name=title, area="right", tabify=True)
    panel.set_image(image, caption)
    return panel
