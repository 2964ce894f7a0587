"""Helpers shared by subcommands: settings files and progress output."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_settings_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--settings",
        type=Path,
        default=None,
        help="run-settings JSON file (as saved by the GUI); options given on the command line win",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def load_settings(args: argparse.Namespace, section: str | None = None) -> dict[str, Any]:
    """The settings file's content (or one section of it); ``{}`` without ``--settings``."""
    path = getattr(args, "settings", None)
    if not path:
        return {}
    from ..runtime.config import read_settings_file

    data = read_settings_file(path, "a JSON object with one section per step")
    if section is not None:
        return dict(data.get(section, {}))
    return data


def progress_callback(args: argparse.Namespace):
    from ..runtime.progress import TerminalBar

    return None if getattr(args, "quiet", False) else TerminalBar()


def apply_settings(args: argparse.Namespace, parser_defaults: dict[str, Any], section: str) -> None:
    """Fill options the user left at their defaults from ``--settings`` section ``section``.

    Options given on the command line win; unknown keys in the section raise a ConfigError naming them.
    """
    from ..runtime.config import ConfigError

    settings = load_settings(args, section)
    unknown = sorted(set(settings) - set(parser_defaults))
    if unknown:
        raise ConfigError(f"settings section {section!r}: unknown key(s) {unknown}; known: {sorted(parser_defaults)}")
    for key, value in settings.items():
        if getattr(args, key) == parser_defaults[key]:
            setattr(args, key, value)


def add_config_argument(p: argparse.ArgumentParser, *, quiet: bool = True) -> None:
    """``--config FILE`` (a JSON configuration, or a dataset's synthesis.json) and ``--quiet``."""
    p.add_argument("--config", type=Path, default=None,
                   help="JSON file with any other setting (docs/parameters.md), or a dataset's synthesis.json to "
                        "make its videos again; options given on the command line win")
    if quiet:
        p.add_argument("--quiet", action="store_true", help="no progress bar")


def load_config(args: argparse.Namespace, cls: type, key: str = "config") -> Any:
    """``cls`` from ``--config``: a plain configuration file, or a synthesis record (its ``run.config``, with
    the output range of the videos it lists); defaults without ``--config``."""
    path = getattr(args, "config", None)
    if not path:
        return cls()
    from ..runtime.config import ConfigError, read_settings_file
    from ..synthesis.export import RECORD_FORMAT, read_record

    data = read_settings_file(path, "a JSON object (a configuration or a synthesis.json)")
    if data.get("format") != RECORD_FORMAT:
        if isinstance(data.get(key), dict):  # a run-settings file saved by the GUI holds the config as a section
            data = data[key]
        return cls.from_dict(data)
    record = read_record(path)
    run = record.get("run", {})
    if run.get("source") not in ("generate", "gui") or key not in run:
        raise ConfigError(f"{path} records videos made by `bvdm {run.get('source', '?')}`, not by `bvdm generate`: "
                          "make them again with the command that made them")
    cfg = cls.from_dict(run[key])
    numbers = sorted(int(k) for k in record.get("videos", {}))
    if numbers:
        cfg = cfg.with_updates({"output.first_video": numbers[0], "output.videos": numbers[-1] - numbers[0] + 1})
    return cfg
