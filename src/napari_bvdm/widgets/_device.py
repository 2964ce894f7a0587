"""Device picker: auto / CUDA n / MPS / CPU with the device name and free memory."""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QWidget

__all__ = ["DevicePicker", "device_choices"]


def device_choices() -> list[tuple[str, str]]:
    """``(device string, description)`` pairs: ``auto`` first, then what torch sees, CPU last."""
    from ..runtime.device import list_devices, resolve_device

    devices = list_devices()
    auto = str(resolve_device("auto"))
    auto_desc = next((d.description for d in devices if d.name == auto), auto)
    return [("auto", f"auto -> {auto_desc}")] + [(d.name, d.description) for d in devices]


class DevicePicker(QWidget):
    """A combo box of devices; ``device`` is the chosen torch device string (or ``"auto"``)."""

    device_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None, device: str = "auto") -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(12)
        self.combo.setToolTip("where training and generation run; 'auto' = CUDA, then MPS, then CPU")
        self.refresh_btn = QPushButton("↻")
        self.refresh_btn.setMaximumWidth(28)
        self.refresh_btn.setToolTip("refresh the device list and free memory")
        self.refresh_btn.clicked.connect(self.refresh)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Device"))
        lay.addWidget(self.combo, 1)
        lay.addWidget(self.refresh_btn)
        self.refresh(select=device)
        self.combo.currentIndexChanged.connect(lambda _i: self.device_changed.emit(self.device))

    @property
    def device(self) -> str:
        return self.combo.currentData() or "auto"

    def set_device(self, device: str) -> None:
        i = self.combo.findData(device)
        if i < 0:  # saved device not present on this machine: fall back to auto
            i = 0
        self.combo.setCurrentIndex(i)

    def refresh(self, select: str | None = None) -> None:
        current = select or (self.device if self.combo.count() else "auto")
        self.combo.blockSignals(True)
        self.combo.clear()
        for name, desc in device_choices():
            self.combo.addItem(desc, name)
        self.combo.blockSignals(False)
        self.set_device(current)
