"""``bvdm generate``: synthetic annotated videos (masks -> textures -> flow -> scene) into a CTC dataset."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

NAME = "generate"
HELP = "generate synthetic, fully annotated videos into a CTC dataset (+ synthesis.json)"
DESCRIPTION = (
    "Generate synthetic videos: cell masks simulated by a shape model (or taken from a label video), "
    "painted by the texture model, carried from frame to frame by the flow model, on a background fitted to "
    "a real video. Models not given are the ones bundled with the package. Every other setting is in the "
    "configuration file (--config; docs/parameters.md); the dataset's synthesis.json is such a file and "
    "makes the same videos again. Several processes can fill one dataset: give each its own --first-video "
    "range with the same settings and seed. The same command run again (after a crash, a kill or a full "
    "disk) keeps the videos already written and makes the missing ones."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import add_config_argument

    p.add_argument("-o", "--output", type=Path, required=True, help="dataset folder to write the videos into")
    p.add_argument("--shapes", default=None, help="shape model file from `bvdm fit-shapes` (default: the bundled one)")
    p.add_argument("--labels", default=None,
                   help="a label video (TIFF stack, frame folder or CTC sequence) to paint instead of simulated masks")
    p.add_argument("--texture", default=None,
                   help="texture model file, or 'classical' for the model-free renderer (default: the bundled one)")
    p.add_argument("--flow", default=None, help="flow model file (default: the bundled one)")
    p.add_argument("--real", default=None,
                   help="a real video (ideally with labels) to copy the background, brightness and halo from")
    p.add_argument("--videos", type=int, default=None, help="number of videos (default 2)")
    p.add_argument("--first-video", type=int, default=None, help="number of the first video, 01 = 1 (default 1)")
    p.add_argument("--frames", type=int, default=None, help="frames per video (default 30)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="frame height and width in pixels (default 512 512)")
    p.add_argument("--cells", type=int, default=None,
                   help="cells in the first frame (default: as dense as in the real video the shapes were fitted on)")
    p.add_argument("--seed", type=int, default=None, help="the same seed gives the same videos (default 0)")
    p.add_argument("--device", default=None, help="auto (a GPU when there is one), cpu, cuda, cuda:N or mps")
    p.add_argument("--overwrite", action="store_true",
                   help="replace videos with the same numbers (default: keep those written with the same settings)")
    add_config_argument(p, quiet=True)


def config_from_args(args: argparse.Namespace):
    """The run's :class:`~napari_bvdm.synthesis.config.GenerateConfig`: ``--config`` (a config or a
    ``synthesis.json`` record), then the options given on the command line."""
    from ..synthesis.config import GenerateConfig
    from ._common import load_config

    cfg = load_config(args, GenerateConfig)
    size = args.size or (None, None)
    return cfg.with_updates({
        "shapes.model": args.shapes, "shapes.labels": args.labels, "texture.model": args.texture,
        "flow.model": args.flow, "scene.real": args.real, "output.videos": args.videos,
        "output.first_video": args.first_video, "shapes.frames": args.frames, "shapes.height": size[0],
        "shapes.width": size[1], "shapes.cells": args.cells, "seed": args.seed, "device": args.device,
    })


def _fixed_mmap_threshold() -> None:
    """glibc only: serve large blocks (whole frames) by mmap, so the heap does not fragment and RSS stays
    flat over long videos (benchmarks/bench_synthesis.py --parts memory). Process-wide, so only the command
    line does it, never the library."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 65536)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def _kept(out: Path, numbers: range) -> list[int]:
    """Videos of ``numbers`` that the dataset already holds and lists (made again only with --overwrite)."""
    from ..synthesis.export import published_videos

    try:
        done = published_videos(out)
    except Exception:  # noqa: BLE001 - a damaged record is reported by the run itself
        return []
    return [n for n in numbers if f"{n:02d}" in done]


def run(args: argparse.Namespace) -> int:
    from ..runtime.progress import run_job
    from ..synthesis import recipe
    from ._common import progress_callback

    _fixed_mmap_threshold()
    cfg = config_from_args(args)
    first = cfg.output.first_video
    numbers = range(first, first + cfg.output.videos)
    kept = [] if args.overwrite else _kept(args.output, numbers)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        out = run_job(recipe.generate(cfg, args.output, recipe.prepare(cfg), overwrite=args.overwrite,
                                      resume=not args.overwrite), progress_callback(args))
    written = [n for n in numbers if n not in kept]
    done = f"wrote videos {_numbers(written)} to {out}" if written else f"wrote no video to {out}"
    note = f", kept {_numbers(kept)} (already there with these settings)" if kept else ""
    print(f"{done}{note} (validated; settings in {out}/synthesis.json)")
    return 0


def _numbers(numbers: list[int]) -> str:
    """``01..03`` for a run of numbers, else ``01, 03``."""
    if len(numbers) > 2 and numbers[-1] - numbers[0] == len(numbers) - 1:
        return f"{numbers[0]:02d}..{numbers[-1]:02d}"
    return ", ".join(f"{n:02d}" for n in numbers)
