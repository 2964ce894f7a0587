"""Flow model accuracy and speed.

Accuracy: Dice between the previous mask warped by the predicted flow and the current mask, on
held-out real pairs, against two baselines: identity (no warp) and a rigid centroid shift. Pairs are
cell-centred crops (as in BVDM), so the identity baseline already removes translation.

- GOWT1: the tracks held out by ``bvdm train-flow`` (same split: val_fraction 0.15, seed 0).
- SIM+ and HeLa (ERR_SEG linked by overlap): data the model never saw (other cells, other pixel size).

Speed: forward pass per crop at batch 1 and batch 32 (96 x 96).

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_flow.py [--weights src/napari_bvdm/defaults/flow.safetensors]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from napari_bvdm.flow import FlowModel
from napari_bvdm.flow.pairs import load_label_video, mask_pairs
from napari_bvdm.flow.train import evaluate_pairs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=ROOT / "src/napari_bvdm/defaults/flow.safetensors")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = FlowModel.load(args.weights)
    tc = model.extra.get("train_config", {})
    crop = model.config.crop_size
    print(f"flow model {args.weights.name}: {model.n_parameters()} parameters, trained on {model.extra.get('source')}")
    print(f"{'data':<34} {'pairs':>6} {'Dice flow':>10} {'identity':>9} {'centroid':>9}")

    rows = []
    lab, lin, _ = load_label_video(DATA / "Fluo-N2DH-GOWT1" / "01")
    pairs = mask_pairs(lab, crop, tracked=True, max_pairs=tc.get("max_pairs"), seed=tc.get("seed", 0))
    _, val = pairs.split(tc.get("val_fraction", 0.15), seed=tc.get("seed", 0))
    rows.append(("GOWT1 01, held-out tracks", val))
    lab, _, _ = load_label_video(DATA / "Fluo-N2DH-SIM+" / "01")
    rows.append(("SIM+ 01 (unseen data)", mask_pairs(lab, crop, tracked=True, max_pairs=1500, seed=0)))
    import tifffile

    files = sorted((DATA / "Fluo-N2DL-HeLa-02-subset20-noGT" / "02_ERR_SEG").glob("*.tif"))
    lab = np.stack([tifffile.imread(f) for f in files])
    rows.append(("HeLa ERR_SEG linked (unseen)", mask_pairs(lab, crop, tracked=False, max_pairs=1500, seed=0)))
    for name, p in rows:
        r = evaluate_pairs(model, p)
        print(f"{name:<34} {r['pairs']:>6} {r['dice']:>10.4f} {r['dice_identity']:>9.4f} "
              f"{r['dice_centroid_shift']:>9.4f}")

    x = torch.zeros(32, 1, crop, crop)
    x[:, :, 30:60, 25:70] = 1
    for b in (1, 32):
        model.predict_torch(x[:b], x[:b])
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < 2.0:
            model.predict_torch(x[:b], x[:b])
            n += 1
        dt = (time.perf_counter() - t0) / n
        print(f"forward {crop}x{crop}, batch {b:>2}: {dt * 1e3:7.1f} ms per call, {dt / b * 1e3:6.2f} ms per crop "
              f"({args.threads} threads)")


if __name__ == "__main__":
    main()
