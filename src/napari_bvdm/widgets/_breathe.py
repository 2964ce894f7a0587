"""Let the event loop run between napari's synchronous layer adds.

Adding a layer to napari is one synchronous call of 0.1-0.2 s under software rendering (the layer, its vispy
visual and overlays, its Qt controls); a step that adds several layers at once would freeze the window for
their sum. :func:`breathe` between the adds runs what is due (timers, repaints, other widgets' updates) but
holds back the user's input, so no click can act on a half-built view.
"""

from __future__ import annotations

__all__ = ["breathe"]


def breathe() -> None:
    """Process pending timers and paint events, without user input (no-op without a Qt application)."""
    from qtpy.QtCore import QCoreApplication, QEventLoop

    if QCoreApplication.instance() is not None:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
