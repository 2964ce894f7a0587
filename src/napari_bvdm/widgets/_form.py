"""Forms built from core :class:`~napari_bvdm.runtime.config.Config` dataclasses.

A :class:`ConfigForm` shows one editor per field (int, float, bool, str, Literal, tuples of
numbers), remembers the values between napari sessions, and returns a *validated* config: the
core config's own ``check()`` decides what is allowed, so the GUI never duplicates range rules.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from ._settings import gui_settings

__all__ = ["ConfigForm"]

_BIG = 2**31 - 1


def _editor(tp: Any, value: Any) -> tuple[QWidget, Any, Any] | None:
    """(editor widget, getter, setter) for a field type, or None when not editable here."""
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        if args[0] is int:  # optional count: the lowest value means "none" (automatic)
            w = QSpinBox()
            w.setRange(-1, _BIG)
            w.setSpecialValueText("auto")

            def get_opt() -> int | None:
                return None if w.value() < 0 else w.value()

            return w, get_opt, lambda v: w.setValue(-1 if v is None else int(v))
        tp, origin, args = args[0], typing.get_origin(args[0]), list(typing.get_args(args[0]))
    if tp is bool:
        w = QCheckBox()
        return w, w.isChecked, lambda v: w.setChecked(bool(v))
    if tp is int:
        w = QSpinBox()
        w.setRange(-_BIG, _BIG)
        return w, w.value, lambda v: w.setValue(int(v))
    if tp is float:
        w = QDoubleSpinBox()
        w.setRange(-1e12, 1e12)
        w.setDecimals(6)
        return w, w.value, lambda v: w.setValue(float(v))
    if origin is typing.Literal:
        w = QComboBox()
        for a in typing.get_args(tp):
            w.addItem(str(a), a)
        return w, w.currentData, lambda v: w.setCurrentIndex(max(0, w.findData(v)))
    if tp is str:
        w = QLineEdit()
        return w, w.text, lambda v: w.setText(str(v))
    if origin is tuple and value is not None:
        w = QLineEdit()
        kind = type(value[0]) if len(value) else float

        def get() -> tuple:
            parts = [p for p in w.text().replace(",", " ").split() if p]
            return tuple(kind(float(p)) if kind is int else kind(p) for p in parts)

        return w, get, lambda v: w.setText(" ".join(str(x) for x in v))
    return None


class ConfigForm(QWidget):
    """Editors for the fields of a Config dataclass, persisted under ``section``.

    Parameters
    ----------
    config_cls : a :class:`~napari_bvdm.runtime.config.Config` subclass.
    section : key in the GUI settings file (and in run-settings files).
    fields : field names to show, in order (default: every editable field).
    """

    def __init__(self, config_cls: type, section: str, fields: Iterable[str] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.config_cls = config_cls
        self.section = section
        self._defaults = config_cls()
        hints = typing.get_type_hints(config_cls)
        all_fields = {f.name: f for f in dataclasses.fields(config_cls)}
        names = list(fields) if fields is not None else list(all_fields)
        self._editors: dict[str, tuple[QWidget, Any, Any]] = {}
        lay = QFormLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        saved = gui_settings().section(section)
        for name in names:
            if name not in all_fields:
                continue
            default = getattr(self._defaults, name)
            ed = _editor(hints.get(name, Any), default)
            if ed is None:
                continue
            widget, _get, set_ = ed
            set_(default)
            if name in saved:
                try:
                    set_(saved[name])
                except (TypeError, ValueError):
                    pass
            doc = all_fields[name].metadata.get("help") if all_fields[name].metadata else None
            widget.setToolTip(f"{name} (default {default!r})" + (f": {doc}" if doc else ""))
            lay.addRow(name.replace("_", " "), widget)
            self._editors[name] = ed
            self._connect_persist(name, widget)

    def _connect_persist(self, name: str, widget: QWidget) -> None:
        sig = None
        for attr in ("valueChanged", "toggled", "currentIndexChanged", "editingFinished"):
            sig = getattr(widget, attr, None)
            if sig is not None:
                break
        if sig is not None:
            sig.connect(lambda *_a, n=name: self._persist(n))

    def _persist(self, name: str) -> None:
        try:
            value = self._editors[name][1]()
            gui_settings().set(self.section, name, list(value) if isinstance(value, tuple) else value)
        except (TypeError, ValueError):
            pass

    def values(self) -> dict[str, Any]:
        """The edited values (only the fields shown)."""
        out = {}
        for name, (_w, get, _s) in self._editors.items():
            v = get()
            out[name] = list(v) if isinstance(v, tuple) else v
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        for name, v in values.items():
            if name in self._editors:
                self._editors[name][2](v)
                self._persist(name)

    def config(self, **overrides: Any):
        """A validated config (raises ConfigError naming the bad field)."""
        return self.config_cls.from_dict({**self._defaults.to_dict(), **self.values(), **overrides})

    def editor(self, name: str) -> QWidget:
        return self._editors[name][0]
