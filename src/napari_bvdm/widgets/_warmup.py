"""Make napari's first layers of a session quick: its one-time set-up done in the background.

The first image, labels or tracks layer that napari adds in a session costs 0.4-0.9 s on a 2-core CPU (module
imports, the unit registry, Qt layer-control classes, vispy's matplotlib check and dash patterns), all on the GUI
thread. :func:`warm_up` does that work in a background thread while the user reads the dock, then moves every
object that exists at that moment out of the cyclic garbage collector's way (:func:`gc.freeze`): napari's heap
holds ~260,000 long-lived objects, and a full collection over them, triggered by the allocations of a layer add, is
another 0.1-0.2 s stall.
The frozen objects go back to the collector (:func:`gc.unfreeze`) when the dock is closed.

``NAPARI_BVDM_WARM_UP=0`` switches both off.
"""

from __future__ import annotations

import gc
import os
import threading

__all__ = ["warm_up", "release"]

_lock = threading.Lock()
_state = {"thread": None, "frozen": False, "users": 0}


def _enabled() -> bool:
    return os.environ.get("NAPARI_BVDM_WARM_UP", "1").strip() not in ("0", "false", "no", "off")


#: Modules the first open, draw and job of a session import on the GUI thread (found by listing ``sys.modules``
#: before and after): napari's and vispy's lazily imported parts, PyOpenGL's array handlers, our reader.
_MODULES = (
    "napari._qt.layer_controls.qt_image_controls", "napari._qt.layer_controls.qt_labels_controls",
    "napari._qt.layer_controls.qt_tracks_controls", "napari._vispy.layers.image", "napari._vispy.layers.labels",
    "napari._vispy.layers.tracks", "napari.components.histogram", "napari.plugins.io", "napari.qt.threading",
    "multiprocessing.synchronize", "OpenGL.arrays.ctypesarrays", "OpenGL.arrays.ctypespointers",
    "OpenGL.arrays.nones", "OpenGL.arrays.strings", "napari_bvdm._reader",
)


def _work() -> None:
    import importlib

    import numpy as np

    try:
        import napari.layers as layers

        layers.Image(np.zeros((2, 8, 8), np.uint16))
        layers.Labels(np.zeros((2, 8, 8), np.uint16))
        layers.Tracks(np.array([[1, 0, 1, 1], [1, 1, 2, 2]], float))
    except Exception:  # a napari without these: nothing to warm, nothing lost
        return
    for name in _MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # private modules of another napari or vispy version
            pass
    try:  # vispy's line visual (tracks) asks once whether matplotlib is there, importing it: 0.3 s
        from vispy.util.check_environment import has_matplotlib

        has_matplotlib()
    except Exception:
        pass
    try:  # every labels layer's polygon overlay builds vispy's dash patterns (80 ms; cached once made)
        from vispy.visuals.line.dash_atlas import DashAtlas

        DashAtlas()
    except Exception:
        pass
    with _lock:
        if _state["users"] > 0 and not _state["frozen"]:
            gc.freeze()
            _state["frozen"] = True


def warm_up() -> threading.Thread | None:
    """Start the warm-up once per process (a daemon thread); every call counts one dock that uses it."""
    if not _enabled():
        return None
    with _lock:
        _state["users"] += 1
        if _state["thread"] is None:
            _state["thread"] = threading.Thread(target=_work, name="bvdm-warm-up", daemon=True)
            _state["thread"].start()
        return _state["thread"]


def release() -> None:
    """One dock is gone; with the last one the frozen objects are collectable again."""
    with _lock:
        if _state["users"] == 0:
            return
        _state["users"] -= 1
        if _state["users"] == 0 and _state["frozen"]:
            gc.unfreeze()
            _state["frozen"] = False
