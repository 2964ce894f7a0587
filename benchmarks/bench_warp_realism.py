"""Realism of later frames on simulated masks: composed warps (default) vs the reference's sequential warps.

Generates one video per warp mode with the bundled models (same seed, same simulated masks), takes per-cell
crops from frames >= --from-frame, and compares them with real GOWT1 crops: classifier two-sample test
accuracy (0.5 = indistinguishable), intensity-histogram and radial-power-spectrum distances.

Usage: .venv/bin/python benchmarks/bench_warp_realism.py [--frames 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOWT1 = ROOT.parent / "shared" / "data" / "Fluo-N2DH-GOWT1" / "01"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--from-frame", type=int, default=10)
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", default="0", help="comma list of generation seeds (one line per mode and seed)")
    ap.add_argument("--modes", default="compose,reference",
                    help="comma list: compose, reference (sequential nearest-neighbour warps, one cell at a time); "
                         "suffixes -tN (refresh strength N), -pN (at most N network passes per refresh), -cN "
                         "(smallest crop N px), -dpm / -ddim (sampler), -nN (N passes for a new cell), "
                         "e.g. compose-ddim-n50-p8-t100 (the earlier defaults)")
    args = ap.parse_args()
    import tifffile
    import torch

    from napari_bvdm.runtime.progress import run_job
    from napari_bvdm.synthesis import recipe
    from napari_bvdm.synthesis.config import GenerateConfig
    from napari_bvdm.synthesis.export import export_dataset
    from napari_bvdm.texture.crops import extract_crops, load_ctc_crops
    from napari_bvdm.texture.realism import c2st_accuracy, histogram_distance, spectrum_distance

    torch.set_num_threads(args.threads)
    real = load_ctc_crops(GOWT1)
    rng = np.random.default_rng(0)
    print(f"real GOWT1 crops: {len(real)}; synthetic: {args.videos} videos x {args.frames} frames, 256 x 256, "
          f"{args.cells} cells, DDIM, crops from frame {args.from_frame} on")
    with tempfile.TemporaryDirectory() as tmp:
        for mode, seed in ((m, int(s)) for s in args.seeds.split(",") for m in args.modes.split(",")):
            out = Path(tmp) / f"{mode}-s{seed}"
            warp, *suffixes = mode.split("-")
            samplers = [s for s in suffixes if s in ("dpm", "ddim")]
            opts = {s[0]: int(s[1:]) for s in suffixes if s not in samplers}
            cfg = GenerateConfig().with_updates({
                "shapes.frames": args.frames, "shapes.height": 256, "shapes.width": 256, "shapes.cells": args.cells,
                "output.videos": args.videos, "texture.refresh_strength": opts.get("t"), "seed": seed,
                "texture.sampler": samplers[0] if samplers else None, "texture.passes": opts.get("n")})
            ing = recipe.prepare(cfg)
            if "p" in opts:
                ing.painter.config = ing.painter.config.replace(refresh_passes=opts["p"])
            engine = recipe.engine_config(cfg, ing.halo).replace(warp=warp)
            if "c" in opts:
                engine = engine.replace(crop_size=opts["c"])
            run_job(export_dataset(out, recipe.mask_source(cfg, ing), ing.painter, ing.flow, ing.scene, engine,
                                   n_videos=args.videos))
            imgs, masks = [], []
            for seq in sorted(p for p in out.iterdir() if p.is_dir() and p.name.isdigit()):
                fr = np.stack([tifffile.imread(f) for f in sorted(seq.glob("t*.tif"))])
                lb = np.stack([tifffile.imread(f) for f in sorted((out / f"{seq.name}_GT" / "TRA").glob("*.tif"))])
                c = extract_crops(fr, lb, frames=list(range(args.from_frame, fr.shape[0])),
                                  normalisation=real.normalisation)
                imgs.append(c.images)
                masks.append(c.masks)
            fake, fmask = np.concatenate(imgs), np.concatenate(masks)
            n = min(len(fake), len(real))
            ri, fi = rng.permutation(len(real))[:n], rng.permutation(len(fake))[:n]
            a = c2st_accuracy(real.images[ri], fake[fi])
            h = histogram_distance(real.images[ri], fake[fi], real.masks[ri], fmask[fi])
            s = spectrum_distance(real.images[ri], fake[fi])
            print(f"{mode:<16} seed {seed}  crops {n:4d}  C2ST accuracy {a:.3f}  histogram {h:.4f}  "
                  f"spectrum {s:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
