"""A tiny live loss plot (QPainter, no matplotlib redraw cost): training and validation loss."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["LossPlot"]

_COLOURS = {"loss": QColor(80, 170, 255), "val_loss": QColor(255, 160, 60)}


class LossPlot(QWidget):
    """Log-scale loss curves against the training step.

    Call :meth:`add` with a step and a dict of metrics; keys ``loss`` and ``val_loss`` are drawn.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series: dict[str, list[tuple[float, float]]] = {"loss": [], "val_loss": []}
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("training loss (blue) and validation loss (orange), log scale")

    def clear(self) -> None:
        for s in self.series.values():
            s.clear()
        self.update()

    def add(self, step: float, metrics: dict) -> None:
        changed = False
        for key, pts in self.series.items():
            v = metrics.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v) and v > 0:
                pts.append((float(step), float(v)))
                changed = True
        if changed:
            self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt name
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, QColor(38, 41, 48))
        pts_all = [pt for s in self.series.values() for pt in s]
        if len(pts_all) < 2:
            p.setPen(QColor(160, 160, 160))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "loss plot (starts with training)")
            p.end()
            return
        xs = [x for x, _ in pts_all]
        ys = [math.log10(y) for _, y in pts_all]
        x0, x1 = min(xs), max(xs) or 1.0
        y0, y1 = min(ys), max(ys)
        if x1 == x0:
            x1 = x0 + 1
        if y1 - y0 < 1e-6:
            y0, y1 = y0 - 0.5, y1 + 0.5
        m = 6

        def to_px(x: float, y: float) -> QPointF:
            return QPointF(m + (x - x0) / (x1 - x0) * (w - 2 * m),
                           h - m - (math.log10(y) - y0) / (y1 - y0) * (h - 2 * m))

        for key, pts in self.series.items():
            if len(pts) < 1:
                continue
            p.setPen(QPen(_COLOURS[key], 1.5))
            p.drawPolyline(QPolygonF([to_px(x, y) for x, y in pts]))
        p.setPen(QColor(200, 200, 200))
        last = self.series["loss"][-1][1] if self.series["loss"] else None
        txt = f"loss {last:.4g}" if last is not None else ""
        if self.series["val_loss"]:
            txt += f"   val {self.series['val_loss'][-1][1]:.4g}"
        p.drawText(m + 2, 14, txt)
        p.end()
