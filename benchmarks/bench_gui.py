"""Drive the real BVDM dock through the default path and measure how responsive napari stays.

Run under a display (``xvfb-run -a python benchmarks/bench_gui.py``). The path is the one a biologist takes:
open a real CTC sequence (GOWT1 01 cropped to 256 x 256 and 20 frames, written to a temporary folder), use
its layers, fit the shape model, use the bundled texture and flow models, preview, export one video. A
timer on the Qt event loop records every gap between its ticks; the longest gap per step is the longest
time napari could not redraw or react to a click.

Prints one line per step and ends with one JSON line: ``max_stall_ms``, ``stall_ms`` per step, ``seconds``
per step, ``minutes`` (the whole path), ``export_valid`` (our validator and py-ctcmetrics), ``controls``
(Basic and Advanced counts of the dock).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "Fluo-N2DH-GOWT1" / "01"
#: the step of the dock each benchmark step's screenshot shows
SHOWN = {"dock": "data", "open": "data", "preview": "generate"}


def crop_sequence(src: Path, dst: Path, frames: int, size: int, y0: int = 300, x0: int = 300) -> Path:
    """A CTC dataset ``dst`` holding sequence 01 = ``src`` cut to ``frames`` frames of ``size`` x ``size``."""
    import tifffile

    from napari_bvdm.io.lineage import lineage_from_labels, read_track_file, write_track_file

    (dst / "01").mkdir(parents=True)
    (dst / "01_GT" / "TRA").mkdir(parents=True)
    win = (slice(y0, y0 + size), slice(x0, x0 + size))
    tra = []
    for t in range(frames):
        tifffile.imwrite(dst / "01" / f"t{t:03d}.tif", tifffile.imread(src / f"t{t:03d}.tif")[win])
        tra.append(tifffile.imread(src.parent / "01_GT" / "TRA" / f"man_track{t:03d}.tif")[win])
    tra = np.stack(tra)
    present = set(np.unique(tra).tolist())
    parents = {int(lab): int(p) for lab, _b, _e, p in read_track_file(src.parent / "01_GT" / "TRA" / "man_track.txt")
               if p and lab in present and p in present}
    tra, lineage = lineage_from_labels(tra, parents)
    for t in range(frames):
        tifffile.imwrite(dst / "01_GT" / "TRA" / f"man_track{t:03d}.tif", tra[t])
    write_track_file(dst / "01_GT" / "TRA" / "man_track.txt", lineage)
    return dst / "01"


class StallMeter:
    """Longest gap between ticks of a 10 ms Qt timer, per named step."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.step = "start"
        self.worst: dict[str, float] = {}
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        gap = (now - self.last) * 1000
        self.last = now
        self.worst[self.step] = max(self.worst.get(self.step, 0.0), gap)

    def begin(self, step: str) -> None:
        self.step = step
        self.last = time.perf_counter()


def ctcmetrics_valid(folder: Path) -> bool:
    """py-ctcmetrics' own validation of the exported GT as if it were a result."""
    try:
        import ctc_metrics
    except ImportError:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        res = Path(tmp) / "01_RES"
        res.mkdir()
        for f in sorted((folder / "01_GT" / "TRA").glob("man_track*.tif")):
            shutil.copy(f, res / f"mask{f.stem[len('man_track'):]}.tif")
        shutil.copy(folder / "01_GT" / "TRA" / "man_track.txt", res / "res_track.txt")
        with contextlib.redirect_stdout(io.StringIO()):
            return bool(ctc_metrics.validate_sequence(str(res), threads=1)["Valid"] == 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--shots", type=Path, default=None, help="folder for a screenshot after every step")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (cropped input, export)")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"real data not found: {DATA}", file=sys.stderr)
        return 2

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_bvdm.io.validator import validate_ctc

    tmp = Path(tempfile.mkdtemp(prefix="bvdm-bench-gui-"))
    seq = crop_sequence(DATA, tmp / "GOWT1-crop", args.frames, args.size)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    _dock, wf = viewer.window.add_plugin_dock_widget("napari-bvdm", "BVDM synthesis")
    app = QApplication.instance()
    for _ in range(5):
        app.processEvents()
    counts = wf.control_counts()  # the dock as a new user first sees it
    meter = StallMeter()
    seconds: dict[str, float] = {}

    def wait(widget, what: str, timeout: float = 3600) -> None:
        t_end = time.monotonic() + timeout
        while widget.runner.running and time.monotonic() < t_end:
            app.processEvents()
            time.sleep(0.002)
        out = widget.runner.last_outcome
        if out is None or out.status != "done":
            raise SystemExit(f"{what} did not finish: {out}")

    def step(name: str, action, widget=None) -> None:
        meter.begin(name)
        t0 = time.perf_counter()
        action()
        if widget is not None:
            wait(widget, name)
        for _ in range(5):
            app.processEvents()
        seconds[name] = time.perf_counter() - t0
        print(f"{name:10s} {seconds[name]:7.1f} s   longest stall {meter.worst.get(name, 0):6.0f} ms", flush=True)
        if args.shots:
            wf.show_step(SHOWN.get(name, name))
            for _ in range(5):
                app.processEvents()
            args.shots.mkdir(parents=True, exist_ok=True)
            viewer.window._qt_window.grab().save(str(args.shots / f"gui-{len(seconds):02d}-{name}.png"))

    def settle() -> None:  # a user reading the new dock for a few seconds, while its warm-up runs
        from napari_bvdm.widgets import _warmup

        thread = _warmup._state["thread"]
        t_end = time.monotonic() + 10
        while thread is not None and thread.is_alive() and time.monotonic() < t_end:
            app.processEvents()
            time.sleep(0.002)

    s = wf.steps
    step("dock", settle)
    step("open", lambda: viewer.open(str(seq), plugin="napari-bvdm"))
    step("data", lambda: (s["data"].select(viewer.layers[0].name, next(
        layer.name for layer in viewer.layers if layer.name.endswith("TRA"))), s["data"].use_layers()), s["data"])
    step("shape", s["shape"].fit, s["shape"])
    step("texture", s["texture"].use_default, s["texture"])
    step("flow", s["flow"].use_default, s["flow"])
    step("preview", s["generate"].preview, s["generate"])
    out = tmp / "export"
    s["export"].set_folder(out)
    s["export"].n_videos.setValue(1)
    step("export", s["export"].export, s["export"])
    valid_ours = validate_ctc(out) == []
    valid_theirs = ctcmetrics_valid(out)
    meter.timer.stop()
    result = {
        "max_stall_ms": round(max(meter.worst.get(k, 0.0) for k in seconds), 1),
        "stall_ms": {k: round(meter.worst.get(k, 0.0), 1) for k in seconds},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "minutes": round(sum(seconds.values()) / 60, 2),
        "export_valid": bool(valid_ours and valid_theirs),
        "validators": {"napari_bvdm": valid_ours, "py_ctcmetrics": valid_theirs},
        "controls": counts,
        "frames": args.frames, "size": args.size,
    }
    print(json.dumps(result))
    viewer.close()
    if args.keep:
        print(f"kept {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
