"""How bright the inside of the cells is, real against synthetic: the dim parts that a network must call cell.

For every annotated cell (CTC ``SEG`` masks) the intensity is expressed relative to the cell's own contrast,
``(pixel - local background) / (90th percentile inside - local background)`` with the local background the
median of a ring 6-12 px outside all cells, and pooled by the distance to the outline. Prints the share of
cell pixels below 0.2 and 0.35 of the contrast and the 10/25/50 % quantiles per distance band, for the real
sequence (its first and second half, at ``--downsample``) and for each synthetic CTC sequence given; then, per
cell, size against brightness: area quantiles, the share of cells over ``--large`` px, their median contrast
(mean inside minus the frame's background median) and the correlation of log area and contrast (real MSC:
larger, spread cells are dimmer).

Example::

    python benchmarks/cell_interior.py ../shared/data/Fluo-C2DL-MSC/01 --downsample 2 \
        eval_msc_s11/data/synthetic/01 e18_dist/synthetic/01
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

BANDS = ((0, 2.5), (2.5, 4.5), (4.5, 8.5), (8.5, np.inf))


def size_and_contrast(image: np.ndarray, seg: np.ndarray) -> list[tuple[int, float]]:
    """Per cell: area and mean intensity minus the frame's background median."""
    bg = float(np.median(image[seg == 0]))
    labs, counts = np.unique(seg, return_counts=True)
    return [(int(n), float(image[seg == lab].mean()) - bg) for lab, n in zip(labs, counts, strict=True) if lab]


def size_summary(name: str, rows: list[tuple[int, float]], large: int) -> str:
    a, k = np.array(rows, dtype=float).T
    big = a > large
    return (f"{name}: {len(a)} cells | area median / 90 %: {np.median(a):.0f} / {np.percentile(a, 90):.0f} | "
            f"over {large} px: {big.mean():.2f} | contrast median {np.median(k):.0f}, of those over {large} px "
            f"{np.median(k[big]) if big.any() else float('nan'):.0f} | corr(log area, contrast) "
            f"{np.corrcoef(np.log(a), k)[0, 1]:+.2f}")


def cell_values(image: np.ndarray, seg: np.ndarray, min_area: int = 100) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per cell: relative intensities inside it and their distances to the outline."""
    out = []
    outside = ndi.distance_transform_edt(seg == 0)
    ring = (outside >= 6) & (outside <= 12)
    for lab, sl in enumerate(ndi.find_objects(seg), start=1):
        if sl is None:
            continue
        box = tuple(slice(max(0, s.start - 20), s.stop + 20) for s in sl)
        m = seg[box] == lab
        r = ring[box]
        if m.sum() < min_area or r.sum() < 50:
            continue
        img = image[box]
        bg = float(np.median(img[r]))
        contrast = float(np.percentile(img[m], 90)) - bg
        if contrast <= 0:
            continue
        out.append(((img[m] - bg) / contrast, ndi.distance_transform_edt(m)[m]))
    return out


def summary(name: str, cells: list[tuple[np.ndarray, np.ndarray]]) -> str:
    v = np.concatenate([c[0] for c in cells])
    d = np.concatenate([c[1] for c in cells])
    parts = [f"{name}: {len(cells)} cells", f"below 0.2: {np.mean(v < 0.2):.3f}",
             f"below 0.35: {np.mean(v < 0.35):.3f}"]
    for lo, hi in BANDS:
        s = v[(d > lo) & (d <= hi)]
        q = np.percentile(s, [10, 25, 50])
        parts.append(f"{lo:g}-{hi:g} px: {q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f}")
    return " | ".join(parts)


def sequence_cells(seq: Path, downsample: int, frames: range | None = None, sizes: bool = False) -> list:
    """:func:`cell_values` (or, with ``sizes``, :func:`size_and_contrast`) of every SEG-annotated frame."""
    import tifffile

    from napari_bvdm.evaluate.data import downsample_image, downsample_labels

    gt = seq.parent / f"{seq.name}_GT" / "SEG"
    cells = []
    for f in sorted(gt.glob("man_seg*.tif")):
        t = int("".join(ch for ch in f.stem if ch.isdigit()))
        if frames is not None and t not in frames:
            continue
        img = tifffile.imread(seq / f"t{t:03d}.tif").astype(np.float32)
        seg = tifffile.imread(f)
        if downsample > 1:
            img = downsample_image(img[None], downsample)[0]
            seg = downsample_labels(seg[None], downsample)[0]
        cells += size_and_contrast(img, seg) if sizes else cell_values(img, seg)
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("real", type=Path, help="real CTC sequence folder (e.g. .../Fluo-C2DL-MSC/01)")
    ap.add_argument("synthetic", type=Path, nargs="*", help="synthetic CTC sequence folders (e.g. .../synthetic/01)")
    ap.add_argument("--downsample", type=int, default=1, help="scale the real frames down by this (default 1)")
    ap.add_argument("--large", type=int, default=1500, help="area (px) above which a cell counts as large")
    args = ap.parse_intermixed_args()
    n = len(list((args.real.parent / f"{args.real.name}_GT" / "TRA").glob("man_track*.tif")))
    half = n // 2
    print("relative intensity = (pixel - local background) / (90th percentile in the cell - local background); "
          "quantiles 10 / 25 / 50 % by distance to the outline")
    print(summary(f"real, frames 0-{half - 1}", sequence_cells(args.real, args.downsample, range(0, half))))
    print(summary(f"real, frames {half}-{n - 1}", sequence_cells(args.real, args.downsample, range(half, n))))
    for syn in args.synthetic:
        print(summary(str(syn), sequence_cells(syn, 1)))
    print("size and brightness")
    print(size_summary(f"real, frames 0-{half - 1}", sequence_cells(args.real, args.downsample, range(0, half), True),
                       args.large))
    print(size_summary(f"real, frames {half}-{n - 1}", sequence_cells(args.real, args.downsample, range(half, n), True),
                       args.large))
    for syn in args.synthetic:
        print(size_summary(str(syn), sequence_cells(syn, 1, sizes=True), args.large))


if __name__ == "__main__":
    main()
