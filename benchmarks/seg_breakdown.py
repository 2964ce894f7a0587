"""Where a training set's SEG is lost: merged neighbours, isolated and touching cells, missed and added pixels.

SEG is the mean, over the annotated cells, of the IoU with the predicted object that covers more than
half of the cell (0 when none does). This script splits it by the cell's surroundings in the ground truth
(*touching*: another annotated cell within ``--touch`` px; *isolated*: none) and counts for every matched
cell whether its predicted object also covers more than 20 % of another annotated cell (*merged*), the
share of the cell's pixels it misses and the pixels it adds (as a share of the cell's area), and whether
the pixels missed lie in the cell's thin parts (removed by an opening with a disc of radius 2: MSC's
protrusions) or its body. It reads the result folders that ``bvdm evaluate`` writes
(``runs/SET-seedN/01_RES`` and ``gt/01_GT/SEG``).

Examples
--------
python benchmarks/seg_breakdown.py "real=eval_msc/runs/real-seed*" "ours=eval_msc/runs/synthetic-seed*"
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi


def _gt_dir(run: Path) -> Path:
    seg = run.parent.parent / "gt" / "01_GT" / "SEG"
    if not seg.is_dir():
        raise SystemExit(f"{run}: no ground truth at {seg} (expected a bvdm evaluate result folder)")
    return seg


def cell_rows(run: Path, touch_px: float = 2.0) -> list[tuple[bool, float, bool, float, float, float, float]]:
    """Per annotated cell: touching, IoU (0 unmatched), merged, missed share, added share, thin share, thin missed."""
    rows = []
    disc = ndi.generate_binary_structure(2, 1)
    disc = ndi.iterate_structure(disc, 2)
    for gt_file in sorted(_gt_dir(run).glob("man_seg*.tif")):
        t = gt_file.stem[len("man_seg"):]
        g = tifffile.imread(gt_file)
        r = tifffile.imread(run / "01_RES" / f"mask{t}.tif")
        for i in np.unique(g)[1:]:
            gm = g == i
            dist = ndi.distance_transform_edt(~gm)
            touching = bool(((g > 0) & ~gm & (dist <= touch_px)).any())
            ids, counts = np.unique(r[gm], return_counts=True)
            hit = [j for j, c in zip(ids, counts, strict=True) if j and c > 0.5 * gm.sum()]
            thin = gm & ~ndi.binary_opening(gm, disc)
            if not hit:
                rows.append((touching, 0.0, False, 1.0, 0.0, thin.sum() / gm.sum(), 1.0))
                continue
            rm = r == hit[0]
            inter = (gm & rm).sum()
            others = [k for k in np.unique(g[rm]) if k and k != i and (g[rm] == k).sum() > 0.2 * (g == k).sum()]
            rows.append((touching, inter / (gm | rm).sum(), bool(others), 1 - inter / gm.sum(),
                         (rm & ~gm).sum() / gm.sum(), thin.sum() / gm.sum(),
                         (thin & ~rm).sum() / max(thin.sum(), 1)))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("groups", nargs="+", help="NAME=GLOB of result run folders (runs/SET-seedN)")
    ap.add_argument("--touch", type=float, default=2.0, help="px to another annotated cell that count as touching")
    args = ap.parse_args(argv)
    print("| set | runs | cells | SEG | SEG isolated | SEG touching | matched | merged (isolated / touching) "
          "| IoU of matched, median | added px, median | body px missed | thin px missed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for group in args.groups:
        name, pattern = group.split("=", 1)
        runs = sorted(Path(p) for p in glob.glob(pattern))
        if not runs:
            raise SystemExit(f"{name}: no run folder matches {pattern}")
        a = np.array([row for run in runs for row in cell_rows(run, args.touch)], float)
        touching, iou, merged, missed, added, thin, thin_missed = a.T
        m = iou > 0
        iso, tch = (touching == 0), (touching == 1)
        body_missed = ((missed - thin * thin_missed) / np.maximum(1 - thin, 1e-9))[m]
        print(f"| {name} | {len(runs)} | {len(a)} | {iou.mean():.3f} | {iou[iso].mean():.3f} | "
              f"{iou[tch].mean():.3f} | {m.mean():.3f} | {merged[m & iso].mean():.3f} / {merged[m & tch].mean():.3f} | "
              f"{np.median(iou[m]):.3f} | {np.median(added[m]):.3f} | {body_missed.mean():.3f} | "
              f"{thin_missed[m].mean():.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
