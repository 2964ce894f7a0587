"""Termination signals: SIGTERM ends a command like Ctrl-C, and short critical sections hold both off.

A command line run wraps its work in :func:`sigterm_as_interrupt`, so ``kill PID`` (SIGTERM) raises
:class:`Terminated`, a :class:`KeyboardInterrupt`: the running job cleans up as after Ctrl-C. Code that
must not stop half way (moving a finished video into its dataset) runs inside :func:`deferred_interrupts`;
a signal arriving there is delivered when the section ends. Both do nothing outside the main thread
(the GUI's workers), where Python cannot install signal handlers.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Terminated", "sigterm_as_interrupt", "deferred_interrupts", "TERMINATED_EXIT"]

#: exit status of a command ended by SIGTERM (128 + 15, as a shell reports it)
TERMINATED_EXIT = 128 + int(signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process received SIGTERM."""


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"terminated by signal {signum}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`Terminated` instead of ending the process at once."""
    if not _in_main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM off until the block ends, then deliver the first one that came."""
    if not _in_main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: object) -> None:
        pending.append(signum)

    kinds = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, hold) for s in kinds}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])
