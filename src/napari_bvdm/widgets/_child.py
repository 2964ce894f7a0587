"""Run a training job in a spawned child process (Qt-free).

Why: training in the napari process holds memory after it ends (GPU caches, micro-sam #952) and
the core's clean-up (``gc.collect`` over napari's large heap) can stall the GUI thread for most of
a second. A child process frees everything when it exits and never competes with Qt for the GIL.

:func:`child_job` is itself a job generator: it starts the child, forwards its
:class:`~napari_bvdm.runtime.progress.Progress` events, re-raises its exception (the original type
when it can be pickled), and turns Cancel into a request the child's job sees through its own
:class:`~napari_bvdm.runtime.progress.CancelToken` (so it writes its checkpoint), with a hard
``terminate`` as the last resort.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import pickle
import queue as queue_mod
import sys
import time
import traceback
from typing import Any

from ..runtime.progress import Cancelled, CancelToken, Progress

__all__ = ["child_job", "ChildProcessFailed"]


class ChildProcessFailed(RuntimeError):
    """The child process died without reporting (killed, out of memory, crashed)."""


def _child_main(target: str, kwargs: dict[str, Any], q, cancel_event) -> None:  # pragma: no cover - child side
    token = CancelToken()
    token._event = cancel_event  # the parent's Cancel sets it; the job checks it between steps
    try:
        module, name = target.split(":")
        func = getattr(importlib.import_module(module), name)
        job = func(cancel=token, **kwargs)
        while True:
            try:
                ev = next(job)
            except StopIteration as stop:
                q.put(("result", stop.value))
                return
            if isinstance(ev, Progress):
                q.put(("progress", ev))
    except Cancelled:
        q.put(("cancelled", None))
    except BaseException as e:  # sent back to the GUI, which shows it
        try:
            payload = pickle.dumps(e)
        except Exception:
            payload = None
        q.put(("error", (payload, f"{type(e).__name__}: {e}", traceback.format_exc())))


@contextlib.contextmanager
def _main_script_hidden():
    """While a child is spawned, the parent's ``__main__`` names no script, so the child does not run it.

    ``spawn`` re-imports the parent's main module in the child (to find functions defined there); the
    child's target lives in napari-bvdm, so the user's script (which may open napari at its top level) is
    not needed and must not run twice.
    """
    main = sys.modules.get("__main__")
    saved = {k: getattr(main, k) for k in ("__file__", "__spec__") if main is not None and hasattr(main, k)}
    try:
        for k in saved:
            setattr(main, k, None) if k == "__spec__" else delattr(main, k)
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def child_job(target: str, kwargs: dict[str, Any], token: CancelToken | None = None, *,
              poll_s: float = 0.1, grace_s: float = 30.0):
    """Job generator running ``target`` (``"module:function"``, a job taking ``cancel=``) in a child.

    ``kwargs`` must be picklable (arrays, config dicts, paths); the result should be small (a path).
    A child that does not stop within ``grace_s`` of a Cancel is terminated. The child is started with
    the ``spawn`` method without importing the parent's main script (:func:`_main_script_hidden`), so a
    user's script that opens napari without an ``if __name__ == "__main__":`` guard is not run again.
    """
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    cancel_event = ctx.Event()
    proc = ctx.Process(target=_child_main, args=(target, kwargs, q, cancel_event), daemon=True)
    with _main_script_hidden():
        proc.start()
    cancelled_at = None
    try:
        while True:
            if token is not None and token.cancelled:
                cancel_event.set()
                cancelled_at = cancelled_at or time.monotonic()
                if time.monotonic() - cancelled_at > grace_s:  # the child does not answer: stop it hard
                    proc.terminate()
                    proc.join(5)
                    raise Cancelled(f"cancelled by the user; the training process did not stop within {grace_s:.0f} s "
                                    "and was terminated (its last periodic checkpoint is kept)")
            try:
                kind, payload = q.get(timeout=poll_s)
            except queue_mod.Empty:
                if not proc.is_alive():
                    try:  # the last message may arrive right after the exit
                        kind, payload = q.get(timeout=1.0)
                    except queue_mod.Empty:
                        raise ChildProcessFailed(
                            f"the training process ended unexpectedly (exit code {proc.exitcode}); "
                            "it may have run out of memory: try a smaller batch size") from None
                else:
                    continue
            if kind == "progress":
                yield payload
            elif kind == "result":
                return payload
            elif kind == "cancelled":
                raise Cancelled("cancelled by the user")
            elif kind == "error":
                pickled, text, _tb = payload
                exc = None
                if pickled is not None:
                    try:
                        exc = pickle.loads(pickled)
                    except Exception:
                        exc = None
                raise exc if isinstance(exc, BaseException) else ChildProcessFailed(text)
    finally:
        if proc.is_alive():
            cancel_event.set()  # e.g. the generator was closed: let the job checkpoint, then stop it
            proc.join(grace_s)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        q.close()
