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
