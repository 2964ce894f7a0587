"""Run a core job generator off the GUI thread, with progress bar, ETA, Cancel and error reports.

Core jobs are generators yielding :class:`~napari_bvdm.runtime.progress.Progress` and returning
their result (see ``docs/dev/contracts.md``). :class:`JobRunner` wraps one in a napari
``create_worker`` generator worker:

- progress events reach the GUI thread at most ~20 times a second (the bar, an ETA, a message,
  the live loss plot and napari's activity-dock progress bar follow them);
- **Cancel** sets the job's :class:`CancelToken`; a job holding the token raises ``Cancelled`` at
  its next check, and a job that does not is closed at its next yield. Either way its own clean-up
  (checkpoint kept, partial output removed) runs *inside the worker thread*, off the GUI thread,
  and the worker is then asked to quit;
- an exception in the job becomes a napari error notification naming the step and the cause, and
  the widget's status line shows it; the GUI never sees a half-finished result.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..runtime.progress import Cancelled, CancelToken, Progress
from ._loss_plot import LossPlot

__all__ = ["JobRunner", "Outcome", "drive_job", "format_eta"]


@dataclass
class Outcome:
    """How a job ended: ``status`` is ``"done"``, ``"cancelled"`` or ``"error"``."""

    status: str
    value: Any = None
    error: BaseException | None = None
    traceback: str = ""


def _plain_cause(error: BaseException | None) -> str:
    """The reason of a failure in words: a refused input says only why; anything else names its type."""
    from ..io.video import InputError
    from ..runtime.config import ConfigError

    if isinstance(error, (InputError, ConfigError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def drive_job(factory: Callable[[CancelToken], Any], token: CancelToken, min_interval: float = 0.05):
    """Generator run in the worker thread: start the job, forward (throttled) events, return Outcome.

    ``factory(token)`` returns a job generator (or, for quick work, the result itself). The
    Outcome is *returned*, never raised, so that every ending reaches the GUI the same way.
    """
    job = None
    try:
        job = factory(token)
        if not hasattr(job, "__next__"):
            return Outcome("done", job)
        last = 0.0
        grace = True
        while True:
            if token.cancelled:
                if not grace:  # the job did not react to its token: close it
                    job.close()  # its GeneratorExit clean-up runs here, in the worker thread
                    return Outcome("cancelled")
                grace = False  # one more step lets a job that holds the token raise Cancelled itself
            try:
                ev = next(job)
            except StopIteration as stop:
                return Outcome("done", stop.value)
            if not isinstance(ev, Progress):  # results streamed by the job (e.g. frames): never dropped
                yield ev
                continue
            now = time.monotonic()
            final = ev.total is not None and ev.step >= ev.total
            if now - last >= min_interval or final:
                last = now
                yield ev
    except Cancelled:
        return Outcome("cancelled")
    except GeneratorExit:
        if job is not None and hasattr(job, "close"):
            job.close()
        raise
    except Exception as e:  # reported in the GUI, never swallowed silently
        if job is not None and hasattr(job, "close"):
            job.close()
        return Outcome("error", error=e, traceback=traceback.format_exc())


class JobRunner(QWidget):
    """Progress bar + status line + Cancel button (+ optional live loss plot) for one job at a time.

    Signals
    -------
    finished(Outcome)
        Emitted on the GUI thread when the job ended (done, cancelled or error).
    running_changed(bool)
    """

    finished = Signal(object)
    running_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None, *, loss_plot: bool = False) -> None:
        super().__init__(parent)
        self._worker = None
        self._token: CancelToken | None = None
        self._pbar = None
        self._t0 = 0.0
        self._title = ""
        self._on_result: Callable[[Any], None] | None = None
        self._on_progress: Callable[[Progress], None] | None = None
        self.last_outcome: Outcome | None = None

        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setTextVisible(True)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.setToolTip("stop at the next step; checkpoints are kept, partial output removed")
        self.cancel_btn.clicked.connect(self.cancel)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.status)
        self.loss_plot: LossPlot | None = None
        if loss_plot:
            self.loss_plot = LossPlot()
            lay.addWidget(self.loss_plot)

    # ------------------------------------------------------------------ public API
    @property
    def running(self) -> bool:
        return self._worker is not None

    @property
    def worker(self):
        return self._worker

    def start(
        self,
        factory: Callable[[CancelToken], Any],
        on_result: Callable[[Any], None] | None = None,
        *,
        title: str = "job",
        on_progress: Callable[[Progress], None] | None = None,
        clear_plot: bool = True,
    ):
        """Run ``factory(token)`` (a job generator) in a worker thread; return the worker.

        ``on_result(value)`` is called on the GUI thread when the job finished normally;
        ``on_progress(event)`` for each (throttled) progress event and for every other object the
        job yields (streamed results such as synthetic frames).
        """
        from napari.qt.threading import create_worker

        if self.running:
            raise RuntimeError(f"{self._title} is still running; cancel it first")
        self._title = title
        self._on_result = on_result
        self._on_progress = on_progress
        self._token = CancelToken()
        self._t0 = time.monotonic()
        self.last_outcome = None
        if self.loss_plot is not None and clear_plot:
            self.loss_plot.clear()
        self.bar.setRange(0, 0)  # busy until the first event says the total
        self.bar.setFormat(f"{title}: starting")
        self.status.setText(f"{title}: starting...")
        self.cancel_btn.setEnabled(True)
        self._pbar = self._make_napari_progress(title)
        worker = create_worker(drive_job, factory, self._token, _start_thread=False)
        worker.yielded.connect(self._on_yield)
        worker.returned.connect(self._on_return)
        worker.errored.connect(self._on_worker_error)
        self._worker = worker
        self.running_changed.emit(True)
        worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the running job to stop at its next step (clean-up runs in the worker thread)."""
        if self._token is not None:
            self._token.cancel()
            self.status.setText(f"{self._title}: cancelling...")
            self.cancel_btn.setEnabled(False)

    def _quit_worker(self) -> None:
        if self._worker is not None:
            self._worker.quit()

    # ------------------------------------------------------------------ worker callbacks
    def _on_yield(self, ev: Any) -> None:
        if not isinstance(ev, Progress):
            if self._on_progress is not None:
                self._on_progress(ev)
            return
        elapsed = time.monotonic() - self._t0
        if ev.total:
            self.bar.setRange(0, int(ev.total))
            self.bar.setValue(min(int(ev.step), int(ev.total)))
        else:
            self.bar.setRange(0, 0)
        eta = ev.metrics.get("eta_s") if ev.metrics else None
        frac = ev.fraction
        if eta is None and frac:
            eta = elapsed * (1 - frac) / frac
        eta_txt = format_eta(eta)
        label = f"{ev.message or self._title} {ev.step}/{ev.total or '?'}"
        self.bar.setFormat(label[:60])
        nums = "  ".join(  # plain names; a value that is not a number (nan, inf) is left out
            f"{k.replace('_per_s', '/s').replace('_', ' ')} {v:.4g}" for k, v in (ev.metrics or {}).items()
            if isinstance(v, (int, float)) and k != "eta_s" and math.isfinite(v)
        )
        self.status.setText(
            f"{ev.message or self._title}" + (f"  {nums}" if nums else "")
            + (f"  ETA {eta_txt}" if eta_txt else "")
        )
        if self.loss_plot is not None and ev.metrics:
            self.loss_plot.add(ev.step, ev.metrics)
        if self._pbar is not None:
            try:
                if ev.total and self._pbar.total != ev.total:
                    self._pbar.total = int(ev.total)
                self._pbar.n = int(ev.step)
                self._pbar.set_description(f"{self._title}: {ev.message}"[:60])
                self._pbar.refresh()
            except Exception:  # the activity-dock bar is a nicety, never an error source
                pass
        if self._on_progress is not None:
            self._on_progress(ev)

    def _on_return(self, outcome: Any) -> None:
        if not isinstance(outcome, Outcome):  # aborted workers return None
            outcome = Outcome("cancelled")
        self._finish(outcome)

    def _on_worker_error(self, exc: BaseException) -> None:
        # drive_job returns errors as Outcome; this only fires for errors in the driver itself
        self._finish(Outcome("error", error=exc))

    def _finish(self, outcome: Outcome) -> None:
        from napari.utils.notifications import show_error, show_info

        self._quit_worker()
        self._worker = None
        self._token = None
        self.cancel_btn.setEnabled(False)
        if self._pbar is not None:
            try:
                self._pbar.close()
            except Exception:
                pass
            self._pbar = None
        took = format_eta(time.monotonic() - self._t0) or "0 s"
        self.bar.setRange(0, 1)
        if outcome.status == "done":
            self.bar.setValue(1)
            self.bar.setFormat(f"{self._title}: done")
            self.status.setText(f"{self._title}: done in {took}")
            if self._on_result is not None:
                try:
                    self._on_result(outcome.value)
                except Exception as e:  # showing the result failed: report, keep napari alive
                    outcome = Outcome("error", error=e, traceback=traceback.format_exc())
        if outcome.status == "cancelled":
            self.bar.setValue(0)
            self.bar.setFormat(f"{self._title}: cancelled")
            self.status.setText(f"{self._title}: cancelled after {took}")
            show_info(f"BVDM: {self._title} cancelled")
        elif outcome.status == "error":
            self.bar.setValue(0)
            self.bar.setFormat(f"{self._title}: failed")
            cause = _plain_cause(outcome.error)
            self.status.setText(f"{self._title} failed: {cause}")
            show_error(f"BVDM: {self._title} failed: {cause}")
        self.last_outcome = outcome
        self.running_changed.emit(False)
        self.finished.emit(outcome)

    @staticmethod
    def _make_napari_progress(title: str):
        try:
            from napari.utils import progress

            return progress(total=0, desc=title)
        except Exception:  # pragma: no cover - napari without Qt activity dock
            return None
