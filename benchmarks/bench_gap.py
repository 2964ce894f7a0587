"""Where synthetic frames differ from real ones, in what a segmenter learns from: one number per property.

Compares a real CTC sequence (with ground truth) and synthetic CTC sequences (``bvdm generate`` output) on

- ``boundary``: mean intensity against the distance to the outline (1-6 px inside and outside), each cell
  scaled to its own contrast (0 = the frame's background median, 1 = the cell's median inside); the gap is
  the mean absolute difference of the two profiles, ``edge_px`` the distance from 80 % to 20 %;
- ``texture``: the radially averaged power spectrum of the cells' interiors (eroded by 3 px, mean removed),
  normalised to sum 1 over 8 frequency bands; the gap is the L1 distance, ``high`` the share of power above
  0.25 cycles/px, ``cv`` the median coefficient of variation inside the cells;
- ``size_brightness``: KS statistics of log area and of contrast (mean inside minus background), and the
  Spearman correlation of the two;
- ``background``: on fully annotated frames, objects outside the annotation (connected parts brighter than the
  background median plus a quarter of the median cell contrast, 3 px away from every annotated cell, at least
  a fifth of the median cell area) per megapixel: debris, out-of-focus or unannotated cells;
- ``clustering``: centres' nearest-neighbour distance over the median cell diameter: its median and the share
  of cells closer than 1.2 diameters (touching or clustered);
- ``errors`` (``--evaluation DIR``, a ``bvdm evaluate`` result): mean AOGM error counts of each training set on
  the real test frames (FN missed, FP extra, NS merges).

Real cells are the SEG objects (CTC SEG frames may annotate only some cells; the background and clustering
figures use only the frames where every TRA marker is covered, or the TRA marker centres). Prints a table and
one JSON line (``--json`` also writes it).

    python benchmarks/bench_gap.py --real ../shared/data/Fluo-N2DH-GOWT1/01 --synthetic OUT \\
        [--evaluation EVAL_DIR] [--max-frames 12] [--json gap.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy import stats

DIST = np.array([*range(-6, 0), *range(1, 7)])  # pixel centres inside (< 0) and outside (> 0)
BANDS = np.linspace(0.0, 0.5, 9)


def _frames(n: int, at_most: int) -> list[int]:
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, at_most))})


def _cells(image: np.ndarray, seg: np.ndarray) -> dict:
    """Per-cell measures of one frame: boundary profile sums, spectra, CV, area, contrast."""
    img = image.astype(np.float64)
    bg = float(np.median(img[seg == 0])) if (seg == 0).any() else 0.0
    out = {"prof_sum": np.zeros(len(DIST)), "prof_n": np.zeros(len(DIST)), "spectra": [], "cv": [], "area": [],
           "contrast": []}
    for lab, sl in enumerate(ndi.find_objects(seg), 1):
        if sl is None:
            continue
        pad = 8
        y0, y1 = max(sl[0].start - pad, 0), min(sl[0].stop + pad, seg.shape[0])
        x0, x1 = max(sl[1].start - pad, 0), min(sl[1].stop + pad, seg.shape[1])
        m = seg[y0:y1, x0:x1] == lab
        if m.sum() < 30:
            continue
        crop = img[y0:y1, x0:x1]
        scale = float(np.median(crop[m])) - bg
        if scale <= 0:
            continue
        norm = (crop - bg) / scale
        d = np.round(ndi.distance_transform_edt(~m) - ndi.distance_transform_edt(m)).astype(int)
        for k, dd in enumerate(DIST):
            sel = d == dd
            if dd > 0:  # outside: only pixels that belong to no other cell
                sel &= seg[y0:y1, x0:x1] == 0
            out["prof_sum"][k] += norm[sel].sum()
            out["prof_n"][k] += sel.sum()
        inner = ndi.binary_erosion(m, iterations=3)
        if inner.sum() >= 25:
            vals = crop[inner]
            out["cv"].append(float(vals.std() / max(vals.mean(), 1e-9)))
            tex = np.where(inner, crop - vals.mean(), 0.0)
            power = np.abs(np.fft.fftshift(np.fft.fft2(tex, s=(64, 64)))) ** 2
            fy, fx = np.meshgrid(np.fft.fftshift(np.fft.fftfreq(64)), np.fft.fftshift(np.fft.fftfreq(64)),
                                 indexing="ij")
            r = np.hypot(fy, fx)
            spec = np.array([power[(r >= a) & (r < b)].sum() for a, b in zip(BANDS[:-1], BANDS[1:], strict=True)])
            if spec[1:].sum() > 0:
                spec[0] = 0.0  # the mean was removed: the DC band only holds the mask's shape
                out["spectra"].append(spec / spec.sum())
        out["area"].append(int(m.sum()))
        out["contrast"].append(float(crop[m].mean() - bg))
    return out


def _merge(parts: list[dict]) -> dict:
    tot = {"prof_sum": sum(p["prof_sum"] for p in parts), "prof_n": sum(p["prof_n"] for p in parts)}
    for k in ("spectra", "cv", "area", "contrast"):
        tot[k] = [x for p in parts for x in p[k]]
    return tot


def _complete(seg: np.ndarray, tra: np.ndarray | None) -> bool:
    if tra is None:
        return True
    markers = set(np.unique(tra[tra > 0]).tolist())
    covered = set(np.unique(tra[(tra > 0) & (seg > 0)]).tolist())
    return markers == covered


def _background(image: np.ndarray, seg: np.ndarray, min_area: float, contrast: float) -> float:
    """Objects outside the annotation at least a quarter as bright as a typical cell, per megapixel."""
    img = ndi.gaussian_filter(image.astype(np.float64), 1.0)
    bg = float(np.median(img[seg == 0])) if (seg == 0).any() else 0.0
    bright = img > bg + 0.25 * contrast
    away = ~ndi.binary_dilation(seg > 0, iterations=3)
    lab, n = ndi.label(bright & away)
    if n == 0:
        return 0.0
    sizes = np.bincount(lab.ravel())[1:]
    return float((sizes >= min_area).sum()) / (img.size / 1e6)


def _nn_distances(centres: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    if len(centres) < 2:
        return np.zeros(0)
    dist, _ = cKDTree(centres).query(centres, k=2)
    return dist[:, 1]


def measure(seq: Path, max_frames: int, real: bool) -> dict:
    """Every measure of one CTC sequence folder."""
    from napari_bvdm.io.readers import read_ctc

    video = read_ctc(seq.parent, lazy=True, sequence=seq.name)
    seg_all = video.labels.get("SEG")
    tra_all = video.labels.get("TRA")
    if seg_all is None and tra_all is None:
        raise SystemExit(f"{seq}: no ground truth (SEG or TRA)")
    seg_frames = sorted(video.seg_frames) if seg_all is not None and video.seg_frames else list(range(video.n_frames))
    if seg_all is None:  # synthetic data without SEG: TRA holds the full masks
        seg_all = tra_all
    def complete(t: int) -> bool:
        return not real or tra_all is None or _complete(np.asarray(seg_all[t]), np.asarray(tra_all[t]))

    full = [t for t in seg_frames if complete(t)] if real else []
    frames = sorted(set(full) | {seg_frames[i] for i in _frames(len(seg_frames), max_frames)})
    parts = [_cells(np.asarray(video.image[t]), np.asarray(seg_all[t])) for t in frames]
    if not real:
        full = frames
    cells = _merge(parts)
    med_area = float(np.median(cells["area"])) if cells["area"] else 0.0
    diameter = 2 * np.sqrt(med_area / np.pi) if med_area else 1.0
    contrast = float(np.median(cells["contrast"])) if cells["contrast"] else 0.0
    bg = [_background(np.asarray(video.image[t]), np.asarray(seg_all[t]), med_area / 5, contrast) for t in full]
    nn = []
    for t in _frames(video.n_frames, max_frames * 2):
        lab = np.asarray((tra_all if tra_all is not None else seg_all)[t])
        ids = np.unique(lab[lab > 0])
        if len(ids) >= 2:
            nn.append(_nn_distances(np.array(ndi.center_of_mass(np.ones_like(lab), lab, ids))) / diameter)
    nn_all = np.concatenate(nn) if nn else np.zeros(0)
    profile = cells["prof_sum"] / np.maximum(cells["prof_n"], 1)
    return {"cells": len(cells["area"]), "frames": len(frames), "full_frames": len(full), "profile": profile,
            "spectrum": np.mean(cells["spectra"], axis=0) if cells["spectra"] else np.zeros(len(BANDS) - 1),
            "cv": float(np.median(cells["cv"])) if cells["cv"] else float("nan"),
            "area": np.array(cells["area"], float), "contrast": np.array(cells["contrast"], float),
            "background_per_mpx": float(np.mean(bg)) if bg else float("nan"),
            "nn_median": float(np.median(nn_all)) if len(nn_all) else float("nan"),
            "clustered": float((nn_all < 1.2).mean()) if len(nn_all) else float("nan"), "diameter": diameter}


def _edge_px(profile: np.ndarray) -> float:
    """Distance (px) from where the profile falls below 0.8 to where it falls below 0.2."""
    def cross(level: float) -> float:
        for k in range(len(DIST) - 1):
            a, b = profile[k], profile[k + 1]
            if a >= level > b:
                return float(DIST[k] + (a - level) / (a - b))
        return float("nan")
    return cross(0.2) - cross(0.8)


def _errors(folder: Path) -> dict:
    rows = list(csv.DictReader((folder / "runs.csv").open()))
    out: dict = {}
    for name in sorted({r["set"] for r in rows}):
        sub = [r for r in rows if r["set"] == name]
        out[name] = {k: round(float(np.mean([float(r[f"AOGM_{k}"]) for r in sub])), 1) for k in ("FN", "FP", "NS")
                     if f"AOGM_{k}" in sub[0]}
        out[name]["SEG"] = round(float(np.mean([float(r["SEG"]) for r in sub])), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, required=True, help="real CTC sequence folder with ground truth (DS/01)")
    ap.add_argument("--synthetic", type=Path, required=True, help="synthetic CTC dataset or sequence folder")
    ap.add_argument("--evaluation", type=Path, default=None, help="a bvdm evaluate result folder (runs.csv)")
    ap.add_argument("--max-frames", type=int, default=12, help="frames measured per sequence (evenly spread)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    syn = [args.synthetic] if (args.synthetic.parent / f"{args.synthetic.name}_GT").is_dir() else sorted(
        p for p in args.synthetic.iterdir() if p.is_dir() and p.name.isdigit() and (p.parent / f"{p.name}_GT").is_dir())
    if not syn:
        raise SystemExit(f"{args.synthetic}: no CTC sequence with ground truth")
    r = measure(args.real, args.max_frames, real=True)
    s = [measure(q, args.max_frames, real=False) for q in syn]
    sm = {"profile": np.mean([x["profile"] for x in s], axis=0),
          "spectrum": np.mean([x["spectrum"] for x in s], axis=0), "area": np.concatenate([x["area"] for x in s]),
          "contrast": np.concatenate([x["contrast"] for x in s])}
    for k in ("cv", "background_per_mpx", "nn_median", "clustered", "diameter"):
        sm[k] = float(np.nanmean([x[k] for x in s]))

    def rho(d: dict) -> float:
        return float(stats.spearmanr(np.log(d["area"]), d["contrast"])[0]) if len(d["area"]) > 2 else float("nan")

    res = {
        "real": str(args.real), "synthetic": [str(q) for q in syn],
        "cells": {"real": r["cells"], "synthetic": int(sum(x["cells"] for x in s))},
        "boundary": {"gap": float(np.mean(np.abs(r["profile"] - sm["profile"]))),
                     "edge_px": {"real": _edge_px(r["profile"]), "synthetic": _edge_px(sm["profile"])},
                     "outside_1px": {"real": float(r["profile"][6]), "synthetic": float(sm["profile"][6])},
                     "profile_real": np.round(r["profile"], 3).tolist(),
                     "profile_synthetic": np.round(sm["profile"], 3).tolist()},
        "texture": {"gap": float(np.abs(r["spectrum"] - sm["spectrum"]).sum()),
                    "high": {"real": float(r["spectrum"][4:].sum()), "synthetic": float(sm["spectrum"][4:].sum())},
                    "cv": {"real": r["cv"], "synthetic": sm["cv"]}},
        "size_brightness": {"ks_log_area": float(stats.ks_2samp(np.log(r["area"]), np.log(sm["area"]))[0]),
                            "ks_contrast_rel": float(stats.ks_2samp(r["contrast"] / np.median(r["contrast"]),
                                                                   sm["contrast"] / np.median(sm["contrast"]))[0]),
                            "spearman": {"real": rho(r), "synthetic": rho(sm)},
                            "median_area": {"real": float(np.median(r["area"])),
                                            "synthetic": float(np.median(sm["area"]))}},
        "background": {"per_mpx": {"real": r["background_per_mpx"], "synthetic": sm["background_per_mpx"]},
                       "real_full_frames": r["full_frames"]},
        "clustering": {"nn_over_diameter": {"real": r["nn_median"], "synthetic": sm["nn_median"]},
                       "closer_than_1_2": {"real": r["clustered"], "synthetic": sm["clustered"]}},
    }
    if args.evaluation is not None:
        res["errors"] = _errors(args.evaluation)
    rows = [("boundary profile gap (mean |real - synthetic|)", f"{res['boundary']['gap']:.3f}", ""),
            ("edge width 80 % -> 20 % (px)", f"{res['boundary']['edge_px']['real']:.2f}",
             f"{res['boundary']['edge_px']['synthetic']:.2f}"),
            ("intensity 1 px outside / cell contrast", f"{res['boundary']['outside_1px']['real']:.3f}",
             f"{res['boundary']['outside_1px']['synthetic']:.3f}"),
            ("inner spectrum gap (L1)", f"{res['texture']['gap']:.3f}", ""),
            ("inner power above 0.25 cycles/px", f"{res['texture']['high']['real']:.3f}",
             f"{res['texture']['high']['synthetic']:.3f}"),
            ("inner coefficient of variation", f"{res['texture']['cv']['real']:.3f}",
             f"{res['texture']['cv']['synthetic']:.3f}"),
            ("KS log area / relative contrast", f"{res['size_brightness']['ks_log_area']:.3f}",
             f"{res['size_brightness']['ks_contrast_rel']:.3f}"),
            ("Spearman log area vs contrast", f"{res['size_brightness']['spearman']['real']:.3f}",
             f"{res['size_brightness']['spearman']['synthetic']:.3f}"),
            ("bright unannotated objects per Mpx", f"{res['background']['per_mpx']['real']:.2f}",
             f"{res['background']['per_mpx']['synthetic']:.2f}"),
            ("nearest neighbour / diameter (median)", f"{res['clustering']['nn_over_diameter']['real']:.2f}",
             f"{res['clustering']['nn_over_diameter']['synthetic']:.2f}"),
            ("cells closer than 1.2 diameters", f"{res['clustering']['closer_than_1_2']['real']:.3f}",
             f"{res['clustering']['closer_than_1_2']['synthetic']:.3f}")]
    print(f"{'measure':46s} {'real':>9s} {'synthetic':>9s}   ({r['cells']} real cells, "
          f"{res['cells']['synthetic']} synthetic)")
    for name, a, b in rows:
        print(f"{name:46s} {a:>9s} {b:>9s}")
    for name, e in res.get("errors", {}).items():
        print(f"errors on real test frames, {name}: " + ", ".join(f"{k} {v}" for k, v in e.items()))
    line = json.dumps(res)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
