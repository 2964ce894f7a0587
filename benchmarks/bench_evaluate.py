"""Cost of the train-on-synthetic evaluation, and what the reduced CPU scale changes.

Prints, for the GOWT1 test half (frames 46-91):

1. scoring (py-ctcmetrics SEG/DET/TRA/LNK) of a tracker result at full scale vs 1/2 and 1/4 scale:
   seconds and the scores, with the time ratio against full scale (the obvious alternative);
2. the segmentation network: seconds per training step (batch 8) and per inferred test frame, for
   the widths used at reduced scale, and the tracker's seconds per frame.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_evaluate.py [--data ../shared/data] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from napari_bvdm.evaluate.data import downsample_labels, load_sequence, split_frames, write_gt_window
    from napari_bvdm.evaluate.scoring import score_result, write_res
    from napari_bvdm.evaluate.segnet import SegNetConfig, build_segnet, instances_from_probs, predict_probs
    from napari_bvdm.evaluate.tracker import track_instances

    seq = args.data / "Fluo-N2DH-GOWT1" / "01"
    v = load_sequence(seq)
    _, test = split_frames(v.n_frames)
    print(f"GOWT1 01, test frames {test.start}-{test.stop - 1}; torch threads {args.threads}")

    print("\n1. scoring a tracker result (tracker run on the GT markers) at reduced scale")
    print(f"{'scale':>6} {'frame':>10} {'score s':>8} {'ratio':>6} {'SEG':>6} {'DET':>6} {'TRA':>6} {'LNK':>6}")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for f in args.factors:
            gt = Path(tmp) / f"x{f}" / "01_GT"
            write_gt_window(v, test, gt, factor=f)
            markers = np.stack([downsample_labels(np.asarray(v.labels["TRA"][t]), f) for t in test])
            tracks, lin = track_instances(markers)
            write_res(gt.parent / "01_RES", tracks, lin)
            t0 = time.perf_counter()
            s = score_result(gt.parent / "01_RES", gt)
            dt = time.perf_counter() - t0
            base = base or dt
            print(f"{'1/' + str(f):>6} {f'{markers.shape[1]}x{markers.shape[2]}':>10} {dt:8.2f} {base / dt:6.1f} "
                  f"{s['SEG']:6.3f} {s['DET']:6.3f} {s['TRA']:6.3f} {s['LNK']:6.3f}")
            t0 = time.perf_counter()
            track_instances(markers)
            track_s = (time.perf_counter() - t0) / len(markers)
            print(f"{'':>6} tracker: {track_s * 1000:.1f} ms per frame")

    print("\n2. segmentation network (CPU), fp32")
    print(f"{'width':>5} {'patch':>5} {'train step s':>12} {'frame':>9} {'infer s/frame':>13} {'params':>8}")
    for width in (8, 16):
        cfg = SegNetConfig(base_channels=width)
        net = build_segnet(cfg)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        x = torch.rand(8, 1, 96, 96)
        y = torch.randint(0, 3, (8, 96, 96))
        times = []
        for i in range(6):
            t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - t0)
        for f in (2, 4):
            img = np.random.default_rng(0).random((1024 // f, 1024 // f)).astype(np.float32)
            t0 = time.perf_counter()
            for _ in range(3):
                instances_from_probs(predict_probs(net, img, cfg), cfg)
            inf = (time.perf_counter() - t0) / 3
            print(f"{width:5d} {96:5d} {np.median(times):12.3f} {f'{img.shape[0]}x{img.shape[1]}':>9} {inf:13.3f} "
                  f"{sum(p.numel() for p in net.parameters()):8d}")


if __name__ == "__main__":
    main()
