"""Realism and mask fidelity of the texture model on held-out GOWT1 tracks: DDPM vs DDIM vs classical.

Prints, for each painter, the classifier two-sample test accuracy (0.5 = indistinguishable), the intensity
histogram distance (W1, normalised units), the power-spectrum distance (decades), the rim-profile distance
(relative units, depth 1-8 px), the Otsu-mask IoU and the painting speed. A ``-rim`` suffix holds the painter
to the rim profile of the training tracks' crops; a ``-flat`` one paints without it. Reference rows: real
crops of the *training* tracks against the held-out real crops.

    OMP_NUM_THREADS=2 python benchmarks/bench_texture_realism.py [--weights W] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from napari_bvdm.texture.crops import load_ctc_crops
from napari_bvdm.texture.model import DEFAULT_WEIGHTS, TextureModel
from napari_bvdm.texture.painter import ClassicalPainter, DiffusionPainter
from napari_bvdm.texture.profile import RimProfile
from napari_bvdm.texture.realism import c2st_accuracy, histogram_distance, otsu_iou, rim_distance, spectrum_distance

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "Fluo-N2DH-GOWT1" / "01"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-fraction", type=float, default=0.25, help="used when the weights do not list val tracks")
    ap.add_argument("--methods", help="comma list: classical, ddpmN, ddimN, dpmN (DPM-Solver++), with -bf16, -tfN "
                    "(SDEdit start, default 200), (DDIM, DPM) -etaX, and -rim / -flat (rim profile of the training "
                    "tracks, or none; default: the model's own) suffixes",
                    default="classical,ddpm200,ddim50,ddim20,ddim10,ddim5,ddpm200-bf16,ddim20-bf16")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.weights.name.endswith(".ckpt.safetensors"):
        from napari_bvdm.texture.train import load_checkpoint_model

        model = load_checkpoint_model(args.weights)
    else:
        model = TextureModel.load(args.weights)
    crops = load_ctc_crops(args.data, crop_size=model.crop_size)
    val_tracks = model.info.get("val_tracks")
    if val_tracks:
        is_val = np.isin(crops.track, val_tracks)
        tr, va = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    else:
        tr, va = crops.split_by_track(args.val_fraction, 42)
    real, masks, br = crops.images[va], crops.masks[va], crops.brightness[va]
    print(f"model {args.weights.name}: {model.config.to_dict()} trained {model.info.get('steps')} steps; "
          f"{len(va)} held-out crops from {len(np.unique(crops.track[va]))} tracks; torch threads "
          f"{torch.get_num_threads()}")
    rows = []
    # reference: real training-track crops (random pairing) vs held-out real crops
    rng = np.random.default_rng(args.seed)
    ref = rng.choice(tr, size=len(va), replace=len(tr) < len(va))
    rows.append(("real (train tracks)", crops.images[ref], crops.masks[ref], float("nan"), 0))
    train_profile = RimProfile.from_crops(crops.subset(tr))
    for meth in args.methods.split(","):
        t0 = time.perf_counter()
        rim = {"rim_profile": "-flat" not in meth, "profile": train_profile if "-rim" in meth else None}
        if meth.startswith("classical"):
            painter = ClassicalPainter.from_crops(crops.subset(tr), train_profile if "-rim" in meth else None)
            fake = painter.paint(masks, br, generator=args.seed)
            passes = 0
        else:
            prec = "bf16" if "-bf16" in meth else "fp32"
            eta = float(meth.split("-eta")[1].split("-")[0]) if "-eta" in meth else 0.0
            name = meth.split("-")[0]
            sampler = name.rstrip("0123456789")
            n = int(name[len(sampler):])
            tf0 = int(meth.split("-tf")[1].split("-")[0]) if "-tf" in meth else 200
            painter = DiffusionPainter(model, sampler, ddim_steps=n, tf0=tf0, precision=prec, batch_size=64,
                                       ddim_eta=eta, **rim)
            fake = painter.paint(masks, br, generator=args.seed)
            passes = painter.passes
        dt = time.perf_counter() - t0
        rows.append((meth, fake, masks, dt, passes))
    print(f"{'painter':22s} {'C2ST acc':>8s} {'hist W1':>8s} {'spec dist':>9s} {'rim dist':>8s} {'Otsu IoU':>8s} "
          f"{'min IoU':>7s} {'time s':>7s} {'passes/s':>8s}")
    for name, fake, fm, dt, passes in rows:
        acc = c2st_accuracy(real, fake, seed=args.seed)
        h = histogram_distance(real, fake, masks, fm)
        s = spectrum_distance(real, fake)
        r = rim_distance(real, fake, masks, fm)
        iou = otsu_iou(fake, fm)
        pps = passes / dt if passes else float("nan")
        print(f"{name:22s} {acc:8.3f} {h:8.4f} {s:9.3f} {r:8.3f} {iou.mean():8.3f} {iou.min():7.3f} {dt:7.1f} "
              f"{pps:8.1f}", flush=True)
    iou_real = otsu_iou(real, masks)
    print(f"{'real held-out (Otsu)':22s} {'':8s} {'':8s} {'':9s} {'':8s} {iou_real.mean():8.3f} {iou_real.min():7.3f}")


if __name__ == "__main__":
    main()
