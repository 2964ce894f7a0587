"""The ``bvdm`` command line: one tool, one subcommand per module in :mod:`napari_bvdm.commands`.

Each module in ``napari_bvdm/commands/`` defines

- ``NAME`` (the subcommand, e.g. ``"fit-shapes"``) and ``HELP`` (one line),
- ``add_arguments(parser)``: its options, each with a help text that states the default,
- ``run(args) -> int``: the work (heavy imports inside), returning the exit status.

Errors a user can fix (bad input, bad settings, wrong weights file) end with exit status 2 and a
one-line cause; other failures (a full disk, a busy dataset, a bug) with exit status 1 and one line;
``--traceback`` shows the full traceback instead. Ctrl-C ends with 130 and SIGTERM with 143, both after
the running job cleaned up.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__


def _command_modules():
    from . import commands

    mods = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return mods


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: X)`` only where X says something and the help text does not already."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text.lower():
            return text
        return super()._get_help_string(action)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> str:
    return f"bvdm: warning: {message}\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bvdm",
        description="napari-bvdm: synthetic, fully annotated live-cell videos from one real video.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"napari-bvdm {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=_HelpFormatter,
        )
        # SUPPRESS: `bvdm --traceback COMMAND` is not overridden by the subcommand's own default
        p.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                       help=argparse.SUPPRESS)  # listed once, in `bvdm --help`
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean 'fix your input', reported in one line."""
    from .io.video import InputError
    from .runtime.config import ConfigError
    from .runtime.progress import Cancelled
    from .runtime.weights import WeightsError

    return (InputError, ConfigError, WeightsError, Cancelled, FileNotFoundError, FileExistsError,
            PermissionError, NotADirectoryError, ValueError, ImportError)


def describe_failure(e: BaseException) -> str:
    """One line for an unexpected failure: the OS's words for file errors, else the exception and its text."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    text = str(e)
    if isinstance(e, OSError) and text:
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def main(argv: list[str] | None = None) -> int:
    import warnings

    from .runtime.signals import TERMINATED_EXIT, Terminated, sigterm_as_interrupt

    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = _one_line_warning
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    try:
        with sigterm_as_interrupt():
            return int(args._run(args) or 0)
    except Terminated:
        print("\nbvdm: terminated (partial output removed, checkpoints kept)", file=sys.stderr)
        return TERMINATED_EXIT
    except KeyboardInterrupt:
        print("\nbvdm: interrupted (partial output removed, checkpoints kept)", file=sys.stderr)
        return 130
    except user_errors() as e:
        if args.traceback:
            raise
        print(f"bvdm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - every other failure: one line, the traceback on request
        if args.traceback:
            raise
        print(f"bvdm {args.command}: error: {describe_failure(e)} (--traceback shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
