"""Faint cells that nobody annotated: measured in the real frames' background, drawn into synthetic ones.

Widefield videos such as Fluo-N2DH-GOWT1 show nuclei that lie out of the focal plane as faint, blurred
blobs (a few per cent of an annotated cell's contrast); the ground truth leaves them out. A network that
learns from real frames learns to leave them out too; one that learns from synthetic frames without
them detects them as cells on real frames (extra detections: FP in the TRA measure). This module
measures such blobs in the real training frames (density, size, contrast) and draws the same population,
unlabelled and slowly drifting, into the background of synthetic frames.

Detection: a difference of Gaussians (sigma r/2 minus 3 r, r = the median annotated cell radius, both
normalised convolutions over background pixels only) on the background more than twice the label radius
away from annotated cells (markers may be smaller than the cells they mark); a
blob is a connected region above 4 robust standard deviations, at least a quarter of a cell's area,
away from the frame border, and dimmer than half the annotated cells' median contrast (brighter
unannotated blobs are more likely cells the annotation missed than cells it left out on purpose).
Its extent is the half-maximum region around it (at most four cells' area: broader swells are
illumination), its contrast the mean DoG signal there. Cells larger than 8 px in radius are measured on
binned pixels (radius / 4 per side).

Drawing inverts that measure: a blob is an (elliptic) Gaussian whose DoG response has the measured
half-maximum area and mean (for a Gaussian of width s smoothed to width e = sqrt(s^2 + (r/2)^2), the
half-maximum region has area 2 pi ln2 e^2 and holds 1 / (2 ln2) of the peak on average), so the
synthetic frames' blobs measure like the real ones (checked in the tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = ["detect_faint", "summarise_faint", "blob_shape", "FaintLayer"]

_MAX_SAMPLES = 200


def _nconv(x: np.ndarray, w: np.ndarray, sigma: float) -> np.ndarray:
    return ndi.gaussian_filter(x * w, sigma) / np.maximum(ndi.gaussian_filter(w, sigma), 1e-6)


def detect_faint(frame: np.ndarray, labels: np.ndarray, radius: float, cell_contrast: float | None = None,
                 k: float = 4.0) -> tuple[list[tuple[float, float]], float]:
    """Faint unannotated blobs in one frame (normalised units).

    Parameters
    ----------
    frame : (H, W) image in normalised units.
    labels : (H, W) annotated cells (markers or masks); 0 = background.
    radius : blob scale in pixels (the annotated cells' median radius).
    cell_contrast : the annotated cells' median contrast over the local background; blobs brighter
        than half of it are not counted (``None``: measured on this frame).
    k : detection threshold in robust standard deviations of the DoG signal.

    Returns
    -------
    ``[(area_px, contrast), ...]`` and the area searched (pixels), for a density. Frames whose cells are
    larger than 8 px in radius are measured on binned pixels (radius / 4 per bin side); areas come back
    in the frame's own pixels.
    """
    f = np.asarray(frame, dtype=np.float32)
    fg = np.asarray(labels) > 0
    r = max(float(radius), 1.0)
    b = max(1, int(r // 4))  # large cells: measured on b x b binned pixels (same blobs, b^2 times cheaper)
    if b > 1:
        hb, wb = f.shape[0] // b * b, f.shape[1] // b * b
        f = f[:hb, :wb].reshape(hb // b, b, wb // b, b).mean((1, 3))
        fg = fg[:hb, :wb].reshape(hb // b, b, wb // b, b).any((1, 3))
        r /= b
    h, w = f.shape
    # markers (TRA) can be smaller than the cells they mark: keep out to twice the label radius
    near = ndi.distance_transform_edt(~fg) <= 2 * round(r) + 2 if fg.any() else fg
    wgt = (~near).astype(np.float32)
    if wgt.sum() < 100:
        return [], 0.0
    large = _nconv(f, wgt, 3.0 * r)
    dog = _nconv(f, wgt, r / 2.0) - large
    bgv = dog[~near]
    # robust spread, but not below half the plain one (a quantised or mostly flat background has MAD 0)
    sd = max(1.4826 * float(np.median(np.abs(bgv - np.median(bgv)))), 0.5 * float(bgv.std()))
    if not np.isfinite(sd) or sd <= 0:
        return [], 0.0
    if cell_contrast is None:
        cell_contrast = float(np.median(f[fg]) - np.median(large[~near])) if fg.any() else np.inf
    m = int(np.ceil(r))
    inner = np.zeros_like(fg)
    inner[m:h - m, m:w - m] = True
    search = inner & ~near
    cand, _ = ndi.label((dog > k * sd) & search)
    out: list[tuple[float, float]] = []
    # a quarter of a cell (at least 12 px: smaller clusters are pixel noise) .. four cells
    min_area, max_area = max(0.25 * np.pi * r * r, 12.0), 4.0 * np.pi * r * r
    grow = int(round(r))
    for i, sl in enumerate(ndi.find_objects(cand), 1):
        if sl is None or (cand[sl] == i).sum() < min_area:
            continue
        # the region grows by ``grow`` px at most: work in its window (plus one px), not the frame
        win = tuple(slice(max(s.start - grow - 1, 0), s.stop + grow + 1) for s in sl)
        region = cand[win] == i
        d = dog[win]
        peak = float(d[region].max())
        grown = ndi.binary_dilation(region, iterations=grow) & search[win]
        half = _component_at(grown & (d > 0.5 * peak), region)
        contrast = float(d[half].mean())
        if contrast >= 0.5 * cell_contrast or half.sum() > max_area:
            continue
        out.append((float(half.sum()) * b * b, contrast))
    return out, float(search.sum()) * b * b


def _component_at(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    lab, _ = ndi.label(mask)
    ids = np.unique(lab[seed & mask])
    ids = ids[ids > 0]
    return np.isin(lab, ids) if ids.size else seed


def summarise_faint(blobs: list[tuple[float, float]], searched: float, frames: int, radius: float,
                    rng: np.random.Generator | None = None) -> dict[str, Any]:
    """``SceneStats.faint``: density per million pixels, sampled areas and contrasts, frames measured,
    and the detection scale ``radius``."""
    if searched <= 0:
        return {}
    blobs = list(blobs)
    n_found = len(blobs)
    if len(blobs) > _MAX_SAMPLES:
        rng = rng or np.random.default_rng(0)
        blobs = [blobs[i] for i in sorted(rng.choice(len(blobs), _MAX_SAMPLES, replace=False))]
    return {"density": round(1e6 * n_found / searched, 6) if blobs else 0.0,
            "areas": [round(a, 2) for a, _ in blobs], "contrasts": [round(c, 6) for _, c in blobs],
            "frames": int(frames), "radius": round(float(radius), 4)}


def blob_shape(area: float, contrast: float, radius: float) -> tuple[float, float]:
    """(sigma, amplitude) of the Gaussian whose DoG response (sigma r/2 minus 3 r) has a half-maximum
    region of ``area`` pixels holding ``contrast`` on average.

    A region smaller than the filter's own response (cut by the search mask) gives a Gaussian no
    narrower than half the filter's variance, so no blob becomes a bright point.
    """
    ss, sl = (radius / 2.0) ** 2, (3.0 * radius) ** 2
    e2 = area / (2.0 * np.pi * np.log(2.0))
    s2 = max(e2 - ss, 0.5 * ss, 0.25)
    peak = contrast * 2.0 * np.log(2.0)
    gain = s2 * (1.0 / (s2 + ss) - 1.0 / (s2 + sl))
    return float(np.sqrt(s2)), float(peak / max(gain, 1e-6))


class FaintLayer:
    """A population of faint unannotated blobs for one synthetic video, drawn frame by frame.

    ``n ~ Poisson(density x H x W / 1e6)`` blobs with a measured (area, contrast) pair each, drawn as
    Gaussians (:func:`blob_shape`) stretched to an axis ratio of 1-1.4 at a random orientation, at a
    uniform position that drifts by a Gaussian step of ``step`` pixels per frame and per axis.
    """

    def __init__(self, faint: dict[str, Any], shape: tuple[int, int], rng: np.random.Generator,
                 step: float = 0.5) -> None:
        h, w = shape
        self.shape = (int(h), int(w))
        self.step = float(step)
        self.rng = rng
        areas = np.asarray(faint.get("areas", []), dtype=np.float64)
        contrasts = np.asarray(faint.get("contrasts", []), dtype=np.float64)
        density = float(faint.get("density", 0.0))
        radius = float(faint.get("radius", 0.0))
        n = int(rng.poisson(density * h * w / 1e6)) if density > 0 and areas.size and radius > 0 else 0
        pick = rng.integers(0, max(areas.size, 1), n)
        self.blobs = []
        for i in pick:
            sigma, amp = blob_shape(float(areas[i]), float(contrasts[i]), radius)
            self.blobs.append({"y": rng.uniform(0, h), "x": rng.uniform(0, w), "sigma": sigma, "amp": amp,
                               "ratio": rng.uniform(1.0, 1.4), "angle": rng.uniform(0, np.pi)})

    def __len__(self) -> int:
        return len(self.blobs)

    def next_frame(self) -> np.ndarray:
        """The layer for the next frame (normalised intensity above the background, float32)."""
        h, w = self.shape
        out = np.zeros((h, w), np.float32)
        for b in self.blobs:
            su, sv = b["sigma"] * np.sqrt(b["ratio"]), b["sigma"] / np.sqrt(b["ratio"])
            half = int(np.ceil(3.5 * su)) + 1
            y0, x0 = int(round(b["y"])) - half, int(round(b["x"])) - half
            sy = slice(max(y0, 0), min(y0 + 2 * half + 1, h))
            sx = slice(max(x0, 0), min(x0 + 2 * half + 1, w))
            if sy.start < sy.stop and sx.start < sx.stop:
                yy, xx = np.mgrid[sy, sx].astype(np.float64)
                dy, dx = yy - b["y"], xx - b["x"]
                ca, sa = np.cos(b["angle"]), np.sin(b["angle"])
                u, v = dx * ca + dy * sa, -dx * sa + dy * ca
                out[sy, sx] += (b["amp"] * np.exp(-0.5 * ((u / su) ** 2 + (v / sv) ** 2))).astype(np.float32)
            b["y"] = float(np.clip(b["y"] + self.rng.normal(0, self.step), 0, h - 1))
            b["x"] = float(np.clip(b["x"] + self.rng.normal(0, self.step), 0, w - 1))
        return out
