"""Device picker: auto / CUDA n / MPS / CPU with the device name and free memory."""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QWidget

__all__ = ["DevicePicker", "device_choices"]


def device_choices() -> list[tuple[str, str]]:
    """``(device string, description)`` pairs: ``auto`` first, then what torch sees, CPU last.

    Does not create a CUDA context in this (napari's) process: names and free memory come from
    ``nvidia-smi`` (a context would hold about 500 MiB of GPU memory until napari quits).
    """
    import os

    import torch

    out: list[tuple[str, str]] = []
    if torch.cuda.is_available():
        smi = _nvidia_smi()
        for i in range(torch.cuda.device_count()):
            out.append((f"cuda:{i}", smi.get(i, f"cuda:{i}")))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append(("mps", "mps (Apple GPU)"))
    out.append(("cpu", f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"))
    auto = out[0]
    return [("auto", f"auto -> {auto[1]}")] + out


def _nvidia_smi() -> dict[int, str]:
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    try:
        res = subprocess.run([exe, "--query-gpu=index,name,memory.free,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return {}
    out = {}
    for line in res.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4 and parts[0].isdigit():
            i, name, free, total = int(parts[0]), parts[1], parts[2], parts[3]
            try:
                out[i] = f"cuda:{i} {name} ({float(free) / 1024:.1f} of {float(total) / 1024:.1f} GiB free)"
            except ValueError:
                out[i] = f"cuda:{i} {name}"
    return out


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
