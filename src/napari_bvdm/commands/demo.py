"""``bvdm demo``: the main job on the bundled defaults — a small synthetic CTC dataset and a preview."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

NAME = "demo"
HELP = "generate a small synthetic CTC dataset with the bundled default models, plus a preview GIF/PNG"
DESCRIPTION = (
    "Generate a small synthetic, fully annotated CTC dataset with the default settings and the models "
    "bundled in the package (shape model, texture DDPM and flow network trained on a real GOWT1 sequence), "
    "validate it, and write a preview: preview.png (frames, top raw, bottom label outlines) and preview.gif "
    "(animated). Nothing is downloaded; no GPU is needed. Same recipe and settings as `bvdm generate`."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import add_config_argument

    p.add_argument("-o", "--out", type=Path, default=Path("bvdm-demo"), help="output folder")
    p.add_argument("--seed", type=int, default=None, help="the same seed gives the same dataset (default 0)")
    p.add_argument("--device", default=None, help="auto (a GPU when there is one), cpu, cuda, cuda:N or mps")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo dataset in the output folder")
    add_config_argument(p)


def _check_replaceable(out: Path, overwrite: bool) -> None:
    """Only an empty folder or a dataset that bvdm wrote (it has a readable synthesis record) is replaced."""
    from ..io.video import InputError
    from ..synthesis.export import SYNTHESIS_JSON, read_record

    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"{out} is a file; choose another --out")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{out} exists; add --overwrite to replace it, or choose another --out")
    if not (out / SYNTHESIS_JSON).is_file():
        raise InputError(f"{out} is not a dataset written by napari-bvdm (no {SYNTHESIS_JSON}); it is left as it is: "
                         "choose another --out")
    read_record(out / SYNTHESIS_JSON)


def _publish(tmp: Path, out: Path) -> None:
    """Swap the new dataset in: the old one is moved aside first and removed only once the new one is in place
    (Ctrl-C and SIGTERM wait until the swap is done)."""
    from ..runtime.signals import deferred_interrupts

    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
    with deferred_interrupts():
        if old is not None:
            out.rename(old / out.name)
        try:
            tmp.rename(out)
        except OSError:
            if old is not None:
                (old / out.name).rename(out)
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import tifffile

    from ..preview import write_preview
    from ..runtime.progress import run_job
    from ..synthesis import recipe
    from ..synthesis.config import GenerateConfig
    from ._common import load_config, progress_callback

    out: Path = args.out
    cfg = load_config(args, GenerateConfig).with_updates({"seed": args.seed, "device": args.device})
    _check_replaceable(out, args.overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-new-", dir=out.parent))
    try:
        run_job(recipe.generate(cfg, tmp / "data", recipe.prepare(cfg)), progress_callback(args))
        data = tmp / "data"
        frames = [tifffile.imread(f) for f in sorted((data / "01").glob("t*.tif"))]
        labels = [tifffile.imread(f) for f in sorted((data / "01_GT" / "TRA").glob("man_track*.tif"))]
        write_preview(frames, labels, data / "preview.png", data / "preview.gif")
        _publish(data, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n_cells = int(np.mean([len(np.unique(lab)) - 1 for lab in labels]))
    s = cfg.shapes
    print(f"demo: {cfg.output.videos} videos x {s.frames} frames of {s.height}x{s.width} (~{n_cells} cells per "
          f"frame) in {time.perf_counter() - t0:.0f} s -> {out}")
    print(f"preview: {out / 'preview.png'}, {out / 'preview.gif'}")
    return 0
