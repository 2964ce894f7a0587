"""``bvdm validate PATH``: check a CTC folder against the ten validity rules plus naming/format."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "validate"
HELP = "check a CTC dataset, sequence, NN_GT or NN_RES folder (rules 1-10, names, track file format)"
DESCRIPTION = (
    "Check a Cell Tracking Challenge folder: the ten validity rules (unique track labels, B <= E, spans "
    "inside the video, no gaps, parents exist and end before their children, every label declared and "
    "inside its span, 16-bit label images, equal image sizes) plus file naming and track-file format. "
    "Every label image is read; of the raw frames only each file's header is checked (an empty, truncated "
    "or damaged file, one that is no TIFF, a frame of another size or pixel type), unless --deep also "
    "decodes their pixels. Exit status 0 when valid, 1 with one line per problem otherwise."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import add_settings_argument

    p.add_argument("path", type=Path, help="dataset folder, sequence folder NN, NN_GT or NN_RES")
    p.add_argument("--frames", type=int, default=None,
                   help="number of frames when no raw frames are beside NN_GT/NN_RES (default: counted)")
    p.add_argument("--max-problems", type=int, default=50, help="print at most this many problems")
    p.add_argument("--deep", action="store_true",
                   help="also decode every raw frame's pixels (reads the whole video; without it only each "
                        "frame's header is checked)")
    add_settings_argument(p)


_DEFAULTS = {"frames": None, "max_problems": 50, "deep": False}


def run(args: argparse.Namespace) -> int:
    from ..io.validator import validate_ctc
    from ._common import apply_settings

    apply_settings(args, _DEFAULTS, "validate")

    problems = validate_ctc(args.path, n_frames=args.frames, deep=args.deep)
    if not problems:
        checked = "every raw frame decoded" if args.deep else "raw frame headers"
        print(f"{args.path}: valid CTC data (rules 1-10, naming, track-file format, {checked})")
        return 0
    print(f"{args.path}: INVALID, {len(problems)} problem(s)")
    for v in problems[: args.max_problems]:
        print(f"  {v}")
    if len(problems) > args.max_problems:
        print(f"  ... and {len(problems) - args.max_problems} more")
    return 1
