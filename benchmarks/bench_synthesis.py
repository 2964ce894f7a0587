"""Synthesis quality and speed: temporal consistency, texture drift, seconds per frame, reference ratio.

Parts (``--parts``, comma-separated; all by default):

consistency  GOWT1 01 frames 0..N-1: relative MAD inside cells between frame t+1 and frame t warped by
             the cell's motion, for the real video, for ours (the real TRA masks as input, so the motion
             is the real one) and for frames painted independently (no flow).
warp         exact flows (a texture swirled 2 degrees per frame at the centre, 100 frames): error against the true
             texture for composed warps vs sequential nearest / bilinear; docs/images/synthesis_drift.png.
drift        GOWT1 01, all 92 frames: per-cell mean and texture contrast (cv of the frame smoothed with
             sigma 1.5) at frame 1 vs the last frame, real vs ours (composed warps) vs the reference
             warping (sequential, nearest); docs/images/synthesis_texture_contrast.png.
speed        shape-model masks: seconds per frame at 512 x 512 with 20 cells and 1024 x 1024 with 50 cells
             (``--big-frames`` frames, 100 for the issue's target), resident memory at frame 10 vs the last.
reference    ``--ref-size`` (1024) with ``--ref-cells`` (50), ``--ref-frames`` frames: the reference schedule one
             cell at a time in 96 x 96 crops (DDPM 200 + 10 per later frame, sequential nearest warps) vs ours
             (DDIM, batched by crop size, composed),
             same masks, same run: time ratio and the quality measures of both.
figure       docs/images/synthesis_side_by_side.png: real frame, synthetic frame, labels.
memory       resident memory over an 80-frame 768 x 768 video (not in the default set); run it plainly and
             with MALLOC_MMAP_THRESHOLD_=65536 to compare glibc's dynamic and a fixed mmap threshold.

Usage (2-core CPU; the machine is shared, repeat runs differ by about 10 %)::

    OMP_NUM_THREADS=2 python benchmarks/bench_synthesis.py --parts consistency,reference
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

from napari_bvdm.flow import FlowModel
from napari_bvdm.synthesis import SynthesisConfig, SynthFrame, fit_scene_stats, generate_video
from napari_bvdm.synthesis.metrics import cell_texture_stats, temporal_consistency

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DEFAULTS = ROOT / "src" / "napari_bvdm" / "defaults"
IMAGES = ROOT / "docs" / "images"


def rss_mb() -> float:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_gowt1(frames: int | None = None):
    import tifffile

    d = DATA / "Fluo-N2DH-GOWT1" / "01"
    files = sorted(d.glob("t*.tif"))[:frames]
    img = np.stack([tifffile.imread(f) for f in files])
    lab = np.stack([tifffile.imread(d.parent / "01_GT" / "TRA" / f"man_track{f.stem[1:]}.tif") for f in files])
    return img, lab


def painters(texture: Path | None, ddim_steps: int, precision: str, sampler: str = "ddim", ddim_eta: float = 0.0,
             refresh_passes: int | None = None):
    """(fast painter, reference painter, description)."""
    from napari_bvdm.texture.model import TextureModel
    from napari_bvdm.texture.painter import DiffusionPainter, DiffusionPainterConfig

    if str(texture) == "classical":
        from napari_bvdm.texture.normalisation import Normalisation
        from napari_bvdm.texture.painter import ClassicalPainter

        p = ClassicalPainter(normalisation=Normalisation(0.0, 181.0, "uint8"))
        return p, p, "classical painter (no network; the reference part is meaningless)"
    if texture is not None and texture.is_file():
        model, desc = TextureModel.load(texture), f"trained texture model {texture.name}"
    else:
        from napari_bvdm.texture.model import TextureModelConfig
        from napari_bvdm.texture.normalisation import Normalisation

        model = TextureModel(TextureModelConfig(), Normalisation(0.0, 170.0, "uint8"))
        desc = "UNTRAINED texture model (speed only: quality figures are meaningless)"
    fast = DiffusionPainter(model, sampler=sampler, config=DiffusionPainterConfig(
        ddim_steps=ddim_steps, precision=precision, ddim_eta=ddim_eta,
        **({} if refresh_passes is None else {"refresh_passes": refresh_passes})))
    ref = DiffusionPainter(model, sampler="ddpm", config=DiffusionPainterConfig(precision="fp32"))
    return fast, ref, desc


def run_video(labels, painter, flow, scene, cfg, lineage=None, brightness=None, keep=True, rss_at=()):
    frames, rss = [], {}
    t0, c0 = time.perf_counter(), time.process_time()
    gen = generate_video(labels, painter, flow, scene, cfg, lineage=lineage, brightness=brightness)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while True:
            try:
                ev = next(gen)
            except StopIteration as stop:
                info = stop.value
                break
            if isinstance(ev, SynthFrame):
                if keep:
                    frames.append(ev.image)
                if ev.t + 1 in rss_at:
                    rss[ev.t + 1] = rss_mb()
    info["cpu_seconds"] = time.process_time() - c0  # all threads; robust to other users of the machine
    return (np.stack(frames) if keep else None), time.perf_counter() - t0, info, rss


def shape_masks(size: int, cells: int, frames: int, seed: int = 0):
    from napari_bvdm.runtime.progress import run_job
    from napari_bvdm.shapes import ShapeModel, SimulationConfig, simulate_masks

    path = DEFAULTS / "shape_model.json"
    if path.is_file():
        model = ShapeModel.load(path)
    else:
        from napari_bvdm.io.readers import read_video
        from napari_bvdm.shapes import fit_shape_model

        cache = Path("/tmp/bench_synthesis_shape_model.json")
        if cache.is_file():
            model = ShapeModel.load(cache)
        else:
            model = run_job(fit_shape_model(read_video(DATA / "Fluo-N2DH-GOWT1" / "01")))
            model.save(cache)
    mv = run_job(simulate_masks(model, SimulationConfig(frames=frames, height=size, width=size, cells=cells,
                                                        seed=seed)))
    return mv


def texture_summary(video, labels, frames) -> dict[str, float]:
    cv, fine = [], []
    for t in frames:
        for s in cell_texture_stats(video[t], labels[t]).values():
            cv.append(s["cv"])
            fine.append(s["fine"])
    return {"cv": float(np.median(cv)), "fine": float(np.median(fine))}


def part_consistency(args, flow, fast, scene, out):
    n = args.frames
    img, lab = load_gowt1(n)
    rng = range(n - 1)
    rf = {"tf_non0": args.tf_non0} if args.tf_non0 else {}
    ours, t_ours, _, _ = run_video(lab, fast, flow, scene, SynthesisConfig(seed=1, **rf))
    seq, t_seq, _, _ = run_video(lab, fast, flow, scene, SynthesisConfig(seed=1, warp="reference", **rf))
    ind, t_ind, _, _ = run_video(lab, fast, None, scene, SynthesisConfig(seed=1, temporal="independent"))
    videos = {"real": img, "ours": ours, "sequential": seq, "independent": ind}
    r = {(k, s): temporal_consistency(v, lab, flow, rng, smooth=s) for k, v in videos.items() for s in (0.0, 2.0)}
    tex = {k: texture_summary(v, lab, range(n)) for k, v in videos.items()}
    print(f"\n[consistency] GOWT1 01 frames 0..{n - 1}, real TRA masks as input ({r['ours', 0.0]['cells']} "
          "cell pairs); relative MAD per pixel and at texture scale (both frames smoothed, sigma 2)")
    print(f"{'video':<14} {'MAD px':>8} {'MAD s2':>8} {'cv':>6} {'fine':>6} {'s/frame':>8}")
    secs = {"real": None, "ours": t_ours / n, "sequential": t_seq / n, "independent": t_ind / n}
    for k in videos:
        ts = f"{secs[k]:8.2f}" if secs[k] else f"{'-':>8}"
        print(f"{k:<14} {r[k, 0.0]['rel_mad']:8.4f} {r[k, 2.0]['rel_mad']:8.4f} {tex[k]['cv']:6.3f} "
              f"{tex[k]['fine']:6.3f} {ts}")
    for s in (0.0, 2.0):
        print(f"sigma {s:g}: ours / real = {r['ours', s]['rel_mad'] / r['real', s]['rel_mad']:.2f}   "
              f"independent / ours = {r['independent', s]['rel_mad'] / r['ours', s]['rel_mad']:.2f}   "
              f"sequential / real = {r['sequential', s]['rel_mad'] / r['real', s]['rel_mad']:.2f}")
    out["consistency"] = {f"{k}_sigma{s:g}": v for (k, s), v in r.items()}
    out["consistency"].update({"texture": tex, "seconds_per_frame": secs})
    return img, lab, ours


def part_drift(args, flow, fast, scene, out):
    img, lab = load_gowt1(None)
    n = img.shape[0]
    runs = {}
    for name, cfg in (("ours (compose, bilinear)", SynthesisConfig(seed=2)),
                      ("reference warp (sequential, nearest)", SynthesisConfig(seed=2, warp="reference"))):
        v, t, _, _ = run_video(lab, fast, flow, scene, cfg)
        runs[name] = (v, t)
    ids0 = set(np.unique(lab[1])) & set(np.unique(lab[n - 1])) - {0}
    curves = {}
    print(f"\n[drift] GOWT1 01, {n} frames, {len(ids0)} cells tracked from frame 1 to {n - 1}")
    print("per-cell statistics inside the cell at texture scale (frames smoothed, sigma 1.5), medians over cells")
    print(f"{'video':<38} {'mean t1':>7} {'mean tN':>7} {'cv t1':>6} {'cv tN':>6} {'cv tN/t1':>9}  [p10, p90]")
    res = {}
    for name, vid in (("real GOWT1", img), *((k, v[0]) for k, v in runs.items())):
        # texture scale: frames smoothed with sigma 1.5 (removes most of the per-frame camera noise)
        per_t = [cell_texture_stats(ndi.gaussian_filter(vid[t].astype(np.float32), 1.5), lab[t], sorted(ids0))
                 for t in range(1, n)]
        mean = np.array([[s.get(i, {}).get("mean", np.nan) for i in sorted(ids0)] for s in per_t])
        cv = np.array([[s.get(i, {}).get("cv", np.nan) for i in sorted(ids0)] for s in per_t])
        curves[name] = np.nanmedian(cv, axis=1)
        ratio = cv[-1] / cv[0]
        res[name] = {"mean_first": float(np.nanmedian(mean[0])), "mean_last": float(np.nanmedian(mean[-1])),
                     "cv_first": float(np.nanmedian(cv[0])), "cv_last": float(np.nanmedian(cv[-1])),
                     "cv_ratio_median": float(np.nanmedian(ratio)),
                     "cv_ratio_p10_p90": [float(np.nanpercentile(ratio, 10)), float(np.nanpercentile(ratio, 90))]}
        r = res[name]
        print(f"{name:<38} {r['mean_first']:7.1f} {r['mean_last']:7.1f} {r['cv_first']:6.3f} {r['cv_last']:6.3f} "
              f"{r['cv_ratio_median']:9.2f}  [{r['cv_ratio_p10_p90'][0]:.2f}, {r['cv_ratio_p10_p90'][1]:.2f}]")
    out["drift"] = res
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        IMAGES.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=120)
        for name, c in curves.items():
            ax.plot(np.arange(1, n), c, label=name)
        ax.set_xlabel("frame")
        ax.set_ylabel("texture contrast cv (median over cells)")
        ax.set_title("Texture contrast over a 92-frame video (GOWT1 masks)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(IMAGES / "synthesis_texture_contrast.png")
        print(f"wrote {IMAGES / 'synthesis_texture_contrast.png'}")
    except ImportError:  # pragma: no cover
        pass


def part_warp(args, out):
    """Drift of repeated warps with exact flows: a texture swirled 2 degrees per frame for 100 frames."""
    from napari_bvdm.flow import compose, warp

    n, frames, deg = 96, 100, 2.0
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32),
                            indexing="ij")
    c = (n - 1) / 2
    g = torch.Generator().manual_seed(0)
    tex = torch.nn.functional.avg_pool2d(torch.rand(1, 1, n, n, generator=g), 3, 1, 1)

    def rot(d: float) -> torch.Tensor:
        """Swirl: rotation by d degrees at the centre, fading with radius (non-rigid; t swirls = one of t*d)."""
        y, x = yy - c, xx - c
        a = np.deg2rad(d) * torch.exp(-(y**2 + x**2) / (2 * (0.3 * n) ** 2))
        return torch.stack([torch.cos(a) * y - torch.sin(a) * x - y, torch.sin(a) * y + torch.cos(a) * x - x])[None]

    inside = (((yy - c) ** 2 + (xx - c) ** 2) < (0.35 * n) ** 2)[None, None]
    u = rot(deg)
    cur = {"sequential, nearest (reference)": tex, "sequential, bilinear": tex}
    disp = None
    err = {k: [] for k in (*cur, "composed (ours)")}
    for t in range(1, frames + 1):
        cur = {"sequential, nearest (reference)": warp(cur["sequential, nearest (reference)"], u, mode="nearest"),
               "sequential, bilinear": warp(cur["sequential, bilinear"], u)}
        disp = u if disp is None else compose(disp, u)
        truth = warp(tex, rot(deg * t))
        for k, v in (*cur.items(), ("composed (ours)", warp(tex, disp))):
            err[k].append(float((v - truth).abs()[inside].mean() / truth[inside].std()))
    print(f"\n[warp] texture swirled {deg:g} deg per frame (at the centre), exact flows; error vs the true texture "
          "(mean |diff| / texture std) at frames 10 / 20 / 50 / 100")
    for k, e in err.items():
        print(f"{k:<34} {e[9]:6.3f} {e[19]:6.3f} {e[49]:6.3f} {e[99]:6.3f}")
    out["warp_drift"] = {k: [e[9], e[19], e[49], e[99]] for k, e in err.items()}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMAGES.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=120)
    for k, e in err.items():
        ax.plot(np.arange(1, frames + 1), e, label=k)
    ax.set_xlabel("frames warped")
    ax.set_ylabel("error vs true texture (rel.)")
    ax.set_title(f"Warp drift: texture swirled {deg:g} deg per frame (exact flows)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(IMAGES / "synthesis_drift.png")
    print(f"wrote {IMAGES / 'synthesis_drift.png'}")


def flops_per_pass(painter, crop: int) -> float:
    """Floating-point operations of one network pass on one ``crop`` x ``crop`` cell (torch's FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = painter.model.net.eval()
    channels = 2 if painter.model.mask_conditioned else 1
    x = torch.zeros(1, channels, crop, crop)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x, torch.zeros(1, dtype=torch.long))
    return float(counter.get_total_flops())


def part_speed(args, flow, fast, scene, out):
    res = {}
    for size, cells, frames in ((512, 20, 10), (1024, 50, args.big_frames)):
        mv = shape_masks(size, cells, frames, seed=3)
        n_cells = [len(np.unique(mv.labels[t])) - 1 for t in range(frames)]
        fast.passes = fast.pass_pixels = 0
        _, t, info, rss = run_video(mv.labels, fast, flow, scene, SynthesisConfig(seed=3), lineage=mv.lineage,
                                    brightness=mv.brightness, keep=False, rss_at=(10, frames))
        key = f"{size}x{size}, {cells} cells"
        res[key] = {"frames": frames, "seconds": t, "seconds_per_frame": t / frames,
                    "cpu_seconds_per_frame": info["cpu_seconds"] / frames,
                    "cells_mean": float(np.mean(n_cells)), "rss_mb": rss, "painter_calls": info["painter_calls"]}
        if hasattr(fast, "model") and fast.passes:
            gflop = flops_per_pass(fast, 96) / 96 ** 2 * fast.pass_pixels / 1e9  # convolutions: linear in pixels
            res[key]["network_gflop"] = gflop
            res[key]["gflop_per_s_over_the_whole_run"] = gflop / t
        print(f"\n[speed] {key}: {frames} frames ({np.mean(n_cells):.1f} cells/frame) in {t:.1f} s = "
              f"{t / frames:.2f} s/frame (CPU time {info['cpu_seconds'] / frames:.2f} s/frame over "
              f"{args.threads} threads); RSS MB at frame {rss}")
    out["speed"] = res
    big = res.get("1024x1024, 50 cells")
    if big:
        out["s_per_frame_1024_50"] = big["seconds_per_frame"]
        if "gflop_per_s_over_the_whole_run" in big:
            out["unet_gflop_per_s"] = big["gflop_per_s_over_the_whole_run"]


def part_memory(args, flow, scene, out):
    """RSS over a long video (768 x 768, 30 cells, 80 frames, classical painter, frames not kept).

    Run once plainly and once with ``MALLOC_MMAP_THRESHOLD_=65536`` to see glibc's heap fragmentation.
    """
    import os
    import tracemalloc

    from napari_bvdm.texture.painter import ClassicalPainter

    mv = shape_masks(768, 30, 80, seed=5)
    p = ClassicalPainter(normalisation=scene.norm)
    tracemalloc.start()
    _, t, _, rss = run_video(mv.labels, p, flow, scene, SynthesisConfig(seed=5), lineage=mv.lineage,
                             brightness=mv.brightness, keep=False, rss_at=(10, 20, 40, 60, 80))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    env = os.environ.get("MALLOC_MMAP_THRESHOLD_", "glibc default")
    print(f"\n[memory] 768x768, 30 cells, 80 frames (mmap threshold: {env}): RSS MB "
          f"{ {k: round(v) for k, v in rss.items()} }, tracemalloc peak {peak / 2**20:.0f} MB, {t:.0f} s")
    out["memory"] = {"rss_mb": rss, "tracemalloc_peak_mb": peak / 2**20, "mmap_threshold": env}


def part_reference(args, flow, fast, ref, scene, out):
    n, size, cells = args.ref_frames, args.ref_size, args.ref_cells
    mv = shape_masks(size, cells, n, seed=4)
    ref.passes = fast.passes = 0  # DiffusionPainter counts network passes per cell
    v_ref, t_ref, i_ref, _ = run_video(mv.labels, ref, flow, scene,
                                   SynthesisConfig(seed=4, warp="reference", tf0=200, tf_non0=10, crop_size=96),
                                   lineage=mv.lineage, brightness=mv.brightness)
    v_our, t_our, i_our, _ = run_video(mv.labels, fast, flow, scene, SynthesisConfig(seed=4), lineage=mv.lineage,
                                   brightness=mv.brightness)
    q = {}
    for name, v in (("reference", v_ref), ("ours", v_our)):
        q[name] = {**temporal_consistency(v, mv.labels, flow, smooth=2.0), **texture_summary(v, mv.labels, range(n))}
    print(f"\n[reference] {size}x{size}, {cells} cells, {n} frames, same masks and flow")
    print(f"{'schedule':<44} {'passes':>7} {'s':>7} {'s/frame':>8} {'MAD s2':>8} {'cv':>6} {'fine':>6}")
    for name, t, p in (("reference: DDPM 200/10, one cell at a time", t_ref, ref.passes),
                       (f"ours: {fast.config.sampler.upper()} {fast.config.ddim_steps}, batched, "
                        f"{fast.config.precision}", t_our, fast.passes)):
        k = "reference" if name.startswith("ref") else "ours"
        print(f"{name:<44} {p:>7} {t:7.1f} {t / n:8.2f} {q[k]['rel_mad']:8.4f} {q[k]['cv']:6.3f} {q[k]['fine']:6.3f}")
    c_ref, c_our = i_ref["cpu_seconds"], i_our["cpu_seconds"]
    print(f"speed-up {t_ref / t_our:.1f}x wall clock, {c_ref / c_our:.1f}x CPU time "
          f"({c_ref:.0f} s vs {c_our:.0f} s); network passes {ref.passes / max(fast.passes, 1):.1f}x fewer")
    out["reference"] = {"frames": n, "seconds": {"reference": t_ref, "ours": t_our}, "ratio": t_ref / t_our,
                        "cpu_seconds": {"reference": c_ref, "ours": c_our}, "cpu_ratio": c_ref / c_our,
                        "passes": {"reference": ref.passes, "ours": fast.passes}, "quality": q,
                        "size": size, "cells": cells, "reference_precision": ref.config.precision,
                        "our_precision": fast.config.precision}
    out[f"ratio_vs_reference_{size}_{cells}"] = t_ref / t_our


def part_figure(img, lab, ours):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.color import label2rgb

    t = min(5, len(ours) - 1)
    sl = (slice(128, 640), slice(256, 768))
    vmax = float(np.percentile(img[t][sl], 99.8))
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9), dpi=110)
    for ax, im, title in ((axes[0], img[t][sl], "real GOWT1 frame"), (axes[1], ours[t][sl], "synthetic frame"),
                          (axes[2], None, "labels (TRA = SEG)")):
        if im is None:
            ax.imshow(label2rgb(lab[t][sl], bg_label=0))
        else:
            ax.imshow(im, cmap="gray", vmin=0, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    IMAGES.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMAGES / "synthesis_side_by_side.png")
    print(f"wrote {IMAGES / 'synthesis_side_by_side.png'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="warp,consistency,drift,speed,reference,figure")
    ap.add_argument("--texture", type=Path, default=DEFAULTS / "texture.safetensors",
                    help="texture weights, or 'classical' for the model-free painter")
    ap.add_argument("--flow", type=Path, default=DEFAULTS / "flow.safetensors")
    ap.add_argument("--ddim-steps", type=int, default=10, help="DDIM passes for a Tf0 start (refresh: 1)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="our painter's arithmetic (auto: bf16 where native, as bvdm generate)")
    ap.add_argument("--sampler", default="ddim", choices=("ddim", "dpm", "ddpm"), help="our painter's sampler")
    ap.add_argument("--ddim-eta", type=float, default=0.0, help="DDIM stochasticity of our painter")
    ap.add_argument("--refresh-passes", type=int, default=None, help="DDIM passes per refresh at most")
    ap.add_argument("--tf-non0", type=int, default=None, help="refresh strength of later frames (default: config)")
    ap.add_argument("--noise-share", type=float, default=None,
                    help="share of the fitted camera noise added on our painter's textures (default: the painter's)")
    ap.add_argument("--frames", type=int, default=12, help="frames for the consistency part")
    ap.add_argument("--ref-frames", type=int, default=4, help="frames for the reference comparison")
    ap.add_argument("--big-frames", type=int, default=100, help="frames of the 1024 x 1024, 50-cell video")
    ap.add_argument("--ref-size", type=int, default=1024, help="frame size of the reference comparison")
    ap.add_argument("--ref-cells", type=int, default=50, help="cells of the reference comparison")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    from napari_bvdm.runtime.device import resolve_precision
    from napari_bvdm.runtime.memory import keep_freed_memory

    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as bvdm generate does
    args.precision = resolve_precision(args.precision, "cpu")
    parts = set(args.parts.split(","))
    flow = FlowModel.load(args.flow)
    fast, ref, desc = painters(args.texture, args.ddim_steps, args.precision, args.sampler, args.ddim_eta,
                               args.refresh_passes)
    if args.noise_share is not None:
        fast.camera_noise_share = args.noise_share
    print(f"painter: {desc}; flow: {args.flow.name}; torch threads {args.threads}")
    img, lab = load_gowt1(None if "drift" in parts else max(args.frames, 8))
    scene = fit_scene_stats(img, lab, fast.normalisation, source="GOWT1 01")
    out: dict = {"painter": desc, "threads": args.threads}
    if "consistency" in parts or "figure" in parts:
        img, lab, ours = part_consistency(args, flow, fast, scene, out)
        if "figure" in parts:
            part_figure(img, lab, ours)
    if "warp" in parts:
        part_warp(args, out)
    if "drift" in parts:
        part_drift(args, flow, fast, scene, out)
    if "reference" in parts:
        part_reference(args, flow, fast, ref, scene, out)
    if "memory" in parts:
        part_memory(args, flow, scene, out)
    if "speed" in parts:
        part_speed(args, flow, fast, scene, out)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {out['peak_rss_mb']:.0f} MB; " + ", ".join(
        f"{k} {out[k]:.3g}" for k in ("s_per_frame_1024_50", "ratio_vs_reference_1024_50", "unet_gflop_per_s")
        if k in out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
