"""Settings that persist between napari sessions, and run-settings files the CLI accepts.

GUI settings (last folders, parameters of every widget) live in one JSON file,
``~/.config/napari-bvdm/gui.json`` (``$XDG_CONFIG_HOME`` respected; ``NAPARI_BVDM_CONFIG_DIR``
overrides the folder, which tests use). It is rewritten atomically on every change.

A *run-settings file* is the JSON the command line reads with ``--settings`` (see
``napari_bvdm.commands._common.load_settings``): one section per subcommand
(``"fit-shapes"``, ``"train-texture"``, ``"train-flow"``, ``"generate"``, ...) plus ``"device"``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..runtime.files import usual_permissions

__all__ = ["GuiSettings", "gui_settings", "config_dir", "save_run_settings", "load_run_settings"]

RUN_SETTINGS_FORMAT = "napari-bvdm-run-settings"


def config_dir() -> Path:
    env = os.environ.get("NAPARI_BVDM_CONFIG_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "napari-bvdm"


def _atomic_write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    usual_permissions(tmp)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class GuiSettings:
    """A small persistent key/value store: ``section`` -> ``key`` -> JSON value."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or (config_dir() / "gui.json")
        self._data: dict[str, dict[str, Any]] = {}
        try:
            loaded = json.loads(self.path.read_text())
            if isinstance(loaded, dict):
                self._data = {k: v for k, v in loaded.items() if isinstance(v, dict)}
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            pass  # a broken or missing settings file only loses remembered values

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self._data.get(section, {}).get(key, default)

    def section(self, section: str) -> dict[str, Any]:
        return dict(self._data.get(section, {}))

    def set(self, section: str, key: str, value: Any) -> None:
        if self._data.get(section, {}).get(key, object()) == value:
            return
        self._data.setdefault(section, {})[key] = value
        try:
            _atomic_write_json(self.path, self._data)
        except OSError:  # read-only home: settings just do not persist
            pass

    def update(self, section: str, values: dict[str, Any]) -> None:
        for k, v in values.items():
            self.set(section, k, v)


_SETTINGS: dict[Path, GuiSettings] = {}


def gui_settings() -> GuiSettings:
    """The process-wide :class:`GuiSettings` for the current config folder."""
    path = config_dir() / "gui.json"
    if path not in _SETTINGS:
        _SETTINGS[path] = GuiSettings(path)
    return _SETTINGS[path]


def save_run_settings(path: str | Path, sections: dict[str, dict[str, Any]], device: str = "auto") -> Path:
    """Write a run-settings file (one section per CLI subcommand) for ``bvdm ... --settings``."""
    path = Path(path)
    data: dict[str, Any] = {"format": RUN_SETTINGS_FORMAT, "device": device}
    for name, values in sections.items():
        data[name] = dict(values)
    _atomic_write_json(path, data)
    return path


def load_run_settings(path: str | Path) -> dict[str, Any]:
    """Read a run-settings file; raise ConfigError with the cause when it is not one."""
    from ..runtime.config import read_settings_file

    return read_settings_file(path, "a JSON object with one section per step")
