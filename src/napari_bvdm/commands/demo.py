"""``bvdm demo``: the main job on the bundled defaults — a small synthetic CTC dataset and a preview."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

NAME = "demo"
HELP = "generate a small synthetic CTC dataset with the bundled default models, plus a preview GIF/PNG"
DESCRIPTION = (
    "Generate a small synthetic, fully annotated CTC dataset with the models bundled in the package (shape "
    "model, texture DDPM and flow network trained on a real GOWT1 sequence), validate it, and write a "
    "preview: preview.png (frames, top raw, bottom label outlines) and preview.gif (animated). Nothing "
    "is downloaded; no GPU is needed."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import add_settings_argument

    p.add_argument("-o", "--out", type=Path, default=Path("bvdm-demo"), help="output folder")
    p.add_argument("--videos", type=int, default=2, help="number of videos")
    p.add_argument("--frames", type=int, default=30, help="frames per video")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(256, 256), help="frame size")
    p.add_argument("--cells", type=int, default=8,
                   help="cells in the first frame (GOWT1's fitted density would give only 1-2 on 256 x 256)")
    p.add_argument("--seed", type=int, default=0, help="seed: the same seed gives the same dataset")
    p.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddim",
                   help="texture sampler (ddim: fewer network passes, the fast default for a CPU)")
    p.add_argument("--texture", default=None,
                   help="texture weights or 'classical' (default: the bundled DDPM)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_settings_argument(p)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import tifffile

    from ..preview import write_preview
    from . import generate

    out: Path = args.out
    if out.exists():
        if not args.overwrite:
            raise FileExistsError(f"{out} exists; pass --overwrite to replace it or choose another --out")
        shutil.rmtree(out)
    parser = argparse.ArgumentParser()
    generate.add_arguments(parser)
    gen_args = vars(parser.parse_args(["--output", str(out)]))  # generate's own defaults
    gen_args.update(
        output=out, videos=args.videos, frames=args.frames, size=tuple(args.size), cells=args.cells,
        seed=args.seed, sampler=args.sampler, texture=args.texture, device=args.device,
        settings=args.settings, quiet=args.quiet, overwrite=False,
    )
    t0 = time.perf_counter()
    rc = generate.run(argparse.Namespace(**gen_args))
    if rc:
        return rc
    seq = out / "01"
    frames = [tifffile.imread(f) for f in sorted(seq.glob("t*.tif"))]
    labels = [tifffile.imread(f) for f in sorted((out / "01_GT" / "TRA").glob("man_track*.tif"))]
    paths = write_preview(frames, labels, out / "preview.png", out / "preview.gif")
    n_cells = int(np.mean([len(np.unique(lab)) - 1 for lab in labels]))
    print(f"demo: {args.videos} videos x {args.frames} frames of {args.size[0]}x{args.size[1]} "
          f"(~{n_cells} cells per frame) in {time.perf_counter() - t0:.0f} s -> {out}")
    print("preview: " + ", ".join(str(p) for p in paths))
    return 0
