"""Progress events and helpers for long jobs written as generators.

Every long job in napari-bvdm (fit, train, generate, export, evaluate) is a generator that yields
:class:`Progress` events and *returns* its result. The same generator serves

- the GUI (``napari.qt.threading.create_worker``; ``quit()`` closes the generator),
- the command line (:func:`run_job` with a terminal progress bar; Ctrl-C closes the generator),
- tests (:func:`run_job` with no callback).

A job must leave consistent files when it is closed early (``GeneratorExit``) or when its
:class:`CancelToken` is set: checkpoints kept, partial exports removed.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["Progress", "Job", "CancelToken", "Cancelled", "run_job", "TerminalBar"]


@dataclass
class Progress:
    """One progress event.

    Parameters
    ----------
    step : int
        Steps done so far (0-based count of finished units).
    total : int or None
        Total number of steps, when known.
    message : str
        Short human-readable description of the current stage.
    metrics : dict
        Optional numbers such as ``loss``, ``val_loss``, ``items_per_s``, ``eta_s``.
    stage : str
        Machine-readable stage name (``"train"``, ``"export"``, ...).
    """

    step: int
    total: int | None = None
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    stage: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.step / self.total)


Job = Generator[Progress, None, T]


class Cancelled(RuntimeError):
    """Raised by a job when its cancel token was set."""


class CancelToken:
    """Thread-safe cancel flag checked by jobs between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` when the token was set."""
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def run_job(job: Job[T], callback: Callable[[Progress], Any] | None = None) -> T:
    """Drain a job generator, passing each event to ``callback``; return the job's result.

    On ``KeyboardInterrupt`` the generator is closed (so it can clean up) and the interrupt
    propagates.
    """
    try:
        while True:
            event = next(job)
            if callback is not None:
                callback(event)
    except StopIteration as stop:
        return stop.value
    except BaseException:
        job.close()
        raise


class TerminalBar:
    """A dependency-free terminal progress bar, usable as a :func:`run_job` callback."""

    def __init__(self, stream=None, width: int = 30, min_interval: float = 0.2) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.min_interval = min_interval
        self._last = 0.0
        self._t0 = time.monotonic()
        self._stage = None

    def __call__(self, ev: Progress) -> None:
        now = time.monotonic()
        if ev.stage != self._stage:
            if self._stage is not None:
                self.stream.write("\n")
            self._stage = ev.stage
            self._t0 = now
        done = ev.total is not None and ev.step >= ev.total
        if now - self._last < self.min_interval and not done:
            return
        self._last = now
        frac = ev.fraction
        if frac is None:
            bar = f"{ev.step}"
        else:
            n = int(frac * self.width)
            bar = "[" + "#" * n + "-" * (self.width - n) + f"] {ev.step}/{ev.total}"
        extra = " ".join(f"{k}={v:.4g}" for k, v in ev.metrics.items() if isinstance(v, (int, float)))
        elapsed = now - self._t0
        eta = ""
        if frac and frac > 0 and not done:
            eta = f" eta {elapsed * (1 - frac) / frac:.0f}s"
        line = f"\r{ev.stage or 'job'} {bar} {ev.message} {extra}{eta}"
        self.stream.write(line[:160].ljust(100))
        if done:
            self.stream.write("\n")
            self._stage = None
        self.stream.flush()
