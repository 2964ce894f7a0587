"""Shape model benchmark: fit/simulate times, KS of simulated vs real, division rate, scaling, memory.

Run from the repository root (2-core CPU figures in docs/shapes.md)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_shapes.py ks
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_shapes.py scaling
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_shapes.py memory --frames 1000
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_shapes.py raster
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_shapes.py outlines [--figure docs/images/msc_outlines.png]

``ks``: fits GOWT1, SIM+ and MSC sequence 01, simulates videos of the same size and length, prints the
KS table per seed and the SIM+ division rate. ``scaling``: 100 frames of 1024 x 1024 with 25/50/100/200
cells (time, time per cell-frame). ``memory``: peak RSS of streaming frames to a sink (T frames of
1024 x 1024, 50 cells) against keeping them in an array (the obvious alternative), in subprocesses.
``outlines``: MSC 01 (first 24 frames): how well the radial descriptor and the real-outline descriptor
redraw every whole annotated cell (IoU, best of the canonical flips), KS of simulated vs real masks and
seconds per simulated frame with ``outlines="model"`` (radial PCA) and ``outlines="real"``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BVDM_SHARED_DATA", ROOT.parent / "shared" / "data"))
SETS = {"GOWT1": "Fluo-N2DH-GOWT1", "SIM+": "Fluo-N2DH-SIM+", "MSC": "Fluo-C2DL-MSC"}


def ks(seeds: list[int], sets: list[str]) -> None:
    from napari_bvdm.io.readers import read_video
    from napari_bvdm.runtime.progress import run_job
    from napari_bvdm.shapes import SimulationConfig, compare, fit_shape_model, simulate_masks
    from napari_bvdm.shapes.compare import _video_features

    for name in sets:
        video = read_video(DATA / SETS[name] / "01")
        t0 = time.perf_counter()
        model = run_job(fit_shape_model(video))
        t_fit = time.perf_counter() - t0
        real = _video_features(video)
        t, h, w = video.shape
        print(f"\n## {name}: fit {t_fit:.1f} s; simulate {t} frames of {h} x {w}")
        print(model.summary())
        rates = []
        feats = ["area", "eccentricity", "solidity", "step", "cells_per_frame"]
        table = []
        for seed in seeds:
            t0 = time.perf_counter()
            sim = run_job(simulate_masks(model, SimulationConfig(frames=t, height=h, width=w, seed=seed)))
            t_sim = time.perf_counter() - t0
            rep = compare(real, sim)
            rates.append(sim.stats["division_rate"])
            print(f"\nseed {seed}: simulate {t_sim:.1f} s, max KS {rep.max_ks:.3f}, "
                  f"divisions {int(sim.stats['divisions'])}, rate {sim.stats['division_rate']:.4f} "
                  f"(fitted {model.params['division']['rate']:.4f})")
            print(rep.table())
            table.append([rep.ks(f) for f in feats])
        table = np.array(table)
        print(f"\n{name} KS over {len(seeds)} seeds | " + " | ".join(feats))
        print("mean | " + " | ".join(f"{v:.3f}" for v in table.mean(0)))
        print("max  | " + " | ".join(f"{v:.3f}" for v in table.max(0)))
        print(f"seeds with every KS <= 0.15: {int((table.max(1) <= 0.15).sum())} of {len(seeds)}")
        fitted = model.params["division"]["rate"]
        if fitted > 0:
            print(f"\n{name} division rate: simulated mean {np.mean(rates):.4f} over {len(seeds)} seeds vs fitted "
                  f"{fitted:.4f}: {100 * (np.mean(rates) / fitted - 1):+.1f} %")


def scaling(frames: int, size: int) -> None:
    from napari_bvdm.runtime.progress import run_job
    from napari_bvdm.shapes import ShapeModel, SimulationConfig, simulate_masks

    model = ShapeModel.default()
    print("| cells | frames | canvas | wall (s) | CPU (s) | CPU ms per cell-frame | tracks |")
    print("|---|---|---|---|---|---|---|")
    for cells in (25, 50, 100, 200):
        cfg = SimulationConfig(frames=frames, height=size, width=size, cells=cells, seed=0)
        t0, c0 = time.perf_counter(), time.process_time()
        sim = run_job(simulate_masks(model, cfg, sink=lambda t, f: None))
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        print(f"| {cells} | {frames} | {size}x{size} | {dt:.2f} | {dc:.2f} | {1e3 * dc / sim.stats['cell_frames']:.3f} "
              f"| {int(sim.stats['tracks'])} |")


def raster(n: int = 300) -> None:
    """Our scanline fill against skimage.draw.polygon (same pixels) on cell-sized 90-point outlines."""
    from skimage import draw

    from napari_bvdm.shapes.contours import fill_polygon

    rng = np.random.default_rng(0)
    polys = []
    for _ in range(n):
        a = np.linspace(-np.pi, np.pi, 90, endpoint=False)
        r = 30 * np.clip(1 + 0.2 * rng.standard_normal(90), 0.3, None)
        cy, cx = rng.uniform(0, 100, 2)
        polys.append((cy + r * np.sin(a), cx + r * np.cos(a)))
    t0 = time.perf_counter()
    ref = [draw.polygon(r, c, shape=(100, 100)) for r, c in polys]
    t1 = time.perf_counter()
    ours = [fill_polygon(r, c, (100, 100)) for r, c in polys]
    t2 = time.perf_counter()
    same = all(np.array_equal(np.sort(a[0] * 100 + a[1]), np.sort(b[0] * 100 + b[1])) for a, b in zip(ref, ours,
                                                                                                     strict=True))
    print(f"skimage.draw.polygon {1e3 * (t1 - t0) / n:.3f} ms, fill_polygon {1e3 * (t2 - t1) / n:.3f} ms per outline: "
          f"{(t1 - t0) / (t2 - t1):.1f}x faster, identical pixels: {same}")


def _memory_child(frames: int, size: int, mode: str) -> None:
    from napari_bvdm.runtime.progress import run_job
    from napari_bvdm.shapes import ShapeModel, SimulationConfig, simulate_masks

    model = ShapeModel.default()
    cfg = SimulationConfig(frames=frames, height=size, width=size, cells=50, seed=0)
    sink = (lambda t, f: None) if mode == "sink" else None
    run_job(simulate_masks(model, cfg, sink=sink))
    dt = time.process_time()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "seconds": dt, "peak_rss_mb": peak}))


def memory(frames: int, size: int, modes: list[str]) -> None:
    rows = {}
    for mode in modes:
        out = subprocess.run([sys.executable, __file__, "_child", "--frames", str(frames), "--size", str(size),
                              "--mode", mode], capture_output=True, text=True, check=True)
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{mode}: {frames} frames {size}x{size}, 50 cells: {rows[mode]['seconds']:.1f} s CPU, "
              f"peak RSS {rows[mode]['peak_rss_mb']:.0f} MB")
    if len(rows) == 2:
        print(f"in-memory / streaming peak RSS ratio: {rows['array']['peak_rss_mb'] / rows['sink']['peak_rss_mb']:.2f}")


def outlines(seeds: list[int], figure: str | None) -> None:
    from napari_bvdm.io.readers import read_video
    from napari_bvdm.runtime.progress import run_job
    from napari_bvdm.shapes import FitConfig, SimulationConfig, compare, fit_shape_model, simulate_masks
    from napari_bvdm.shapes.contours import angles, clean_labels, fill_polygon, measure_frame, outline_to_polygon

    full = read_video(DATA / SETS["MSC"] / "01", lazy=True)
    video = full.frames(0, 24)
    video.image = np.asarray(video.image)
    video.labels = {k: np.asarray(v) for k, v in video.labels.items()}
    ious: dict[str, list[float]] = {"radial": [], "outline": []}
    for t in video.seg_frames:
        lab, _, _ = clean_labels(video.labels["SEG"][t])
        for r in measure_frame(lab, t, outline_points=192):
            if r.outline is None:
                continue
            a = angles(len(r.radii))
            for name, xy in (("radial", np.stack([r.radii * np.cos(a), r.radii * np.sin(a)], axis=1)),
                             ("outline", r.outline)):
                best = 0.0
                for flip in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                    rr, cc = fill_polygon(*outline_to_polygon(xy * flip, r.area, r.orientation, r.centroid),
                                          lab.shape)
                    m = np.zeros(lab.shape, bool)
                    m[rr, cc] = True
                    truth = lab == r.label
                    best = max(best, float((m & truth).sum() / (m | truth).sum()))
                ious[name].append(best)
    print(f"MSC 01 frames 0-23: {len(ious['radial'])} whole annotated cells redrawn from their descriptor")
    for name, v in ious.items():
        v = np.array(v)
        print(f"  {name:8s} IoU median {np.median(v):.3f}, 5 % {np.percentile(v, 5):.3f}, min {v.min():.3f}")
    t0 = time.perf_counter()
    model = run_job(fit_shape_model(video, FitConfig(keep_outlines=500)))
    print(f"fit with outlines kept: {time.perf_counter() - t0:.1f} s, {len(model.outlines)} outlines")
    _, h, w = video.shape
    feats = ["area", "eccentricity", "solidity", "step", "cells_per_frame"]
    print("| outlines | s/frame | " + " | ".join(f"KS {f}" for f in feats) + " |")
    print("|---|---|" + "---|" * len(feats))
    frames = {}
    for mode in ("model", "real"):
        ks_rows, secs = [], []
        for seed in seeds:
            t0 = time.perf_counter()
            sim = run_job(simulate_masks(model, SimulationConfig(frames=24, height=h, width=w, seed=seed,
                                                                 outlines=mode)))
            secs.append((time.perf_counter() - t0) / 24)
            rep = compare(video, sim.to_video())
            ks_rows.append([rep.ks(f) for f in feats])
            frames.setdefault(mode, sim.labels[12])
        k = np.mean(ks_rows, axis=0)
        print(f"| {mode} | {np.median(secs):.4f} | " + " | ".join(f"{x:.3f}" for x in k) + " |")
    if figure:
        from matplotlib.figure import Figure
        from skimage.color import label2rgb

        fig = Figure(figsize=(15, 5), layout="constrained")
        axes = fig.subplots(1, 3)
        seg_t = video.seg_frames[len(video.seg_frames) // 2]
        for ax, (title, lab) in zip(axes, [(f"real SEG, frame {seg_t}", video.labels["SEG"][seg_t]),
                                           ("simulated, outlines='model' (radial PCA)", frames["model"]),
                                           ("simulated, outlines='real'", frames["real"])], strict=True):
            ax.imshow(label2rgb(np.asarray(lab), bg_label=0))
            ax.set_title(title)
            ax.axis("off")
        fig.savefig(figure, dpi=60)
        print(f"wrote {figure}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["ks", "scaling", "memory", "raster", "outlines", "_child"])
    ap.add_argument("--figure", default=None, help="outlines: write the side-by-side figure here")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--mode", default="sink")
    ap.add_argument("--modes", nargs="+", default=["sink", "array"])
    a = ap.parse_args()
    if a.what == "ks":
        ks(a.seeds, a.sets)
    elif a.what == "scaling":
        scaling(a.frames, a.size)
    elif a.what == "raster":
        raster()
    elif a.what == "outlines":
        outlines(a.seeds, a.figure)
    elif a.what == "memory":
        memory(a.frames, a.size, a.modes)
    else:
        _memory_child(a.frames, a.size, a.mode)


if __name__ == "__main__":
    main()
