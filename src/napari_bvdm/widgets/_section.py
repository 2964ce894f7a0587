"""A collapsible section whose open height follows its word-wrapped text."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QPropertyAnimation
from superqt import QCollapsible

__all__ = ["Section"]


class Section(QCollapsible):
    """:class:`superqt.QCollapsible` that opens to the height its content needs at its actual width.

    QCollapsible sizes the open content by its ``sizeHint``, which word-wrapped labels compute for a wider
    line than the dock gives them, so their last lines were cut off.
    """

    def _expand_collapse(self, direction: Any, animate: bool = True, emit: bool = True) -> None:
        super()._expand_collapse(direction, animate, emit)
        if animate or direction != QPropertyAnimation.Direction.Forward:
            return
        content = self.content()
        lay = content.layout()
        width = content.width()
        if lay is not None and width > 0 and lay.hasHeightForWidth():
            needed = lay.totalHeightForWidth(width) + 10
            if needed > content.maximumHeight():
                content.setMaximumHeight(needed)
