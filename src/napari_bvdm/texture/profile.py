"""The real cells' mean intensity profile across the rim, as a function of the distance to the outline.

SDEdit keeps the low frequencies of its start image, and a briefly trained denoiser draws its own rim: on
MSC at 1/2 scale (docs/texture.md#rim-profile) the synthetic cells' relative intensity 1, 2, 3 px inside the
outline was 0.65 / 0.91 / 1.07 where the real cells' is 0.57 / 0.74 / 0.93. :class:`RimProfile` measures, on
the real training crops, each cell's mean intensity (relative to its own mean) at every whole-pixel depth
``d = 1 .. max_distance`` inside its outline (``d`` = the Euclidean distance to the nearest background pixel,
rounded up; deeper pixels share one last value), averaged over cells. :meth:`RimProfile.shade` turns masks into
a start image's relative grey (mean 1 inside each mask); :meth:`RimProfile.match` brings a painted batch's mean
profile to it with one gain per depth.

"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..io.video import InputError
from ..runtime.config import Config

MIN_CELLS = 8
"""Fewest cells a profile is fitted on."""



def _depth(mask: np.ndarray, max_distance: int) -> np.ndarray:
    """Whole-pixel depth inside ``mask`` (1 on the outline, ``max_distance + 1`` for every deeper pixel)."""
    d = ndi.distance_transform_edt(mask)
    return np.minimum(np.ceil(d - 1e-6), max_distance + 1).astype(np.int64)


def _relative_cells(images: np.ndarray, masks: np.ndarray, max_distance: int,
                    depths: list[np.ndarray | None] | None = None):
    """For every usable cell (at least 4 pixels, a finite positive mean): its index, the relative intensity
    (pixel / the cell's mean) of its pixels, their depth - 1 (0 .. ``max_distance``) and the mean. ``depths``:
    the masks' :func:`_depth` maps when already computed."""
    for i, (img, m) in enumerate(zip(images, masks, strict=True)):
        if m.sum() < 4:
            continue
        mean = float(img[m].mean())
        if not np.isfinite(mean) or mean <= 0:
            continue
        depth = (_depth(m, max_distance) if depths is None else depths[i])[m] - 1
        yield i, img[m] / mean, depth, mean


def _mean_profile(images: np.ndarray, masks: np.ndarray, max_distance: int, min_cells: int,
                  depths: list[np.ndarray | None] | None = None) -> tuple[np.ndarray, int]:
    """Mean over cells of each cell's relative intensity per depth; depths reached by fewer than ``min_cells``
    cells repeat the depth before (1 for the first). Returns the values and the number of cells used.
    ``depths``: the masks' :func:`_depth` maps when already computed."""
    n = max_distance + 1
    sums, counts = np.zeros(n), np.zeros(n)
    used = 0
    for _, rel, depth, _ in _relative_cells(images, masks, max_distance, depths):
        cnt = np.bincount(depth, minlength=n)
        per = np.bincount(depth, rel, minlength=n) / np.maximum(cnt, 1)
        sums[cnt > 0] += per[cnt > 0]
        counts[cnt > 0] += 1
        used += 1
    values = np.ones(n)
    for k in range(n):
        values[k] = sums[k] / counts[k] if counts[k] >= min_cells else (values[k - 1] if k else 1.0)
    return values, used


def measure_profile(images: np.ndarray, masks: np.ndarray, max_distance: int = 12) -> np.ndarray:
    """The mean relative profile of ``images`` inside ``masks`` (B, h, w) at depth 1 .. ``max_distance`` (and
    deeper), like :meth:`RimProfile.fit` but for any number of cells; a depth that no cell reaches takes the
    value of the depth before it (1 when none)."""
    return _mean_profile(np.asarray(images, np.float32), np.asarray(masks) > 0, max_distance, 1)[0]


@dataclass
class RimProfile(Config):
    """Mean relative intensity of real cells at depth 1, 2, ... px inside their outline.

    Parameters
    ----------
    values : relative intensity at depth ``1 .. len(values) - 1`` px; the last value holds for every deeper
        pixel. A flat silhouette is all ones.
    cells : how many cells it was measured on (0 = not measured).
    """

    values: list[float] = field(default_factory=lambda: [1.0, 1.0])
    cells: int = 0

    def check(self) -> None:
        v = np.asarray(self.values, dtype=float)
        self._require(v.ndim == 1 and 2 <= v.size <= 257, "values", "must hold 2 to 257 numbers")
        self._require(bool(np.isfinite(v).all()) and bool((v > 0).all()), "values", "must be finite and > 0")
        self._require(self.cells >= 0, "cells", "must be >= 0")

    @property
    def max_distance(self) -> int:
        return len(self.values) - 1

    @classmethod
    def fit(cls, images: np.ndarray, masks: np.ndarray, max_distance: int = 12) -> RimProfile:
        """Measure the profile on cell crops ``images`` / ``masks`` (N, h, w), e.g. a ``CellCrops``' arrays.

        Every cell counts once per depth it has pixels at (small cells add only to the outer depths);
        a depth that fewer than :data:`MIN_CELLS` cells reach takes the value of the depth before it.
        """
        if not 1 <= max_distance <= 256:
            raise InputError(f"max_distance must be in 1..256, got {max_distance}")
        images = np.asarray(images, np.float32)
        masks = np.asarray(masks) > 0
        if images.shape != masks.shape or images.ndim != 3:
            raise InputError(f"images {images.shape} and masks {masks.shape} must be the same (N, h, w)")
        depths = [_depth(m, max_distance) if m.any() else None for m in masks]  # once for both measures
        values, used = _mean_profile(images, masks, max_distance, MIN_CELLS, depths)
        if used < MIN_CELLS:
            raise InputError(f"a rim profile needs at least {MIN_CELLS} cells with a positive mean; got {used}")
        values = np.maximum(values, 1e-3)
        return cls(values=[round(float(v), 5) for v in values], cells=used)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, strict: bool = True) -> RimProfile:
        """As :meth:`Config.from_dict`; the per-depth quantiles that earlier versions stored are dropped."""
        return super().from_dict({k: v for k, v in (data or {}).items() if k != "quantiles"}, strict=strict)

    @classmethod
    def from_crops(cls, crops: Any, max_distance: int = 12) -> RimProfile:
        """:meth:`fit` on a :class:`~napari_bvdm.texture.crops.CellCrops`."""
        return cls.fit(crops.images, crops.masks, max_distance)

    def shade(self, masks: np.ndarray) -> np.ndarray:
        """Relative grey of each mask's pixels (0 outside), normalised to mean 1 inside every mask.

        ``masks`` is (h, w) or (B, h, w); the result has the same shape, float32.
        """
        m = np.asarray(masks) > 0
        single = m.ndim == 2
        if single:
            m = m[None]
        table = np.concatenate([[0.0], np.asarray(self.values, dtype=np.float64)])
        out = np.zeros(m.shape, np.float32)
        for i in range(m.shape[0]):
            if not m[i].any():
                continue
            g = table[np.where(m[i], _depth(m[i], self.max_distance), 0)]
            g /= g[m[i]].mean()
            out[i] = g
        return out[0] if single else out

    def measure(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """:func:`measure_profile` of ``images`` / ``masks`` at this profile's depths."""
        return measure_profile(images, masks, self.max_distance)

    def match(self, images: np.ndarray, masks: np.ndarray, max_gain: float = 2.0, rounds: int = 3) -> np.ndarray:
        """``images`` (B, h, w) with every depth's mean over the cells brought to this profile.

        One gain per depth for the whole batch (``target / measured``, clipped to ``[1/max_gain, max_gain]``;
        ``rounds`` passes, as a gain moves each cell's own mean a little), so the cells keep their own variations
        around the mean rim; pixels outside the masks are left unchanged.
        """
        out = np.array(images, np.float32, copy=True)
        m = np.asarray(masks) > 0
        depth = [_depth(mi, self.max_distance) if mi.any() else None for mi in m]
        target = np.asarray(self.values)
        for _ in range(rounds):
            measured = _mean_profile(out, m, self.max_distance, 1, depth)[0]
            gain = np.clip(target / np.maximum(measured, 1e-6), 1 / max_gain, max_gain)
            table = np.concatenate([[1.0], gain]).astype(np.float32)
            for i, d in enumerate(depth):
                if d is not None:
                    out[i] *= table[np.where(m[i], d, 0)]
        return out


# --- outside the outline: the halo of the real frames ----------------------------------------------------
HALO_BACKGROUND = (3, 8)
"""Distances (px beyond the halo) of the ring whose median is a cell's local background."""


def _rings(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell ids, whole-pixel distance outside the cells (0 inside) and each pixel's nearest cell."""
    fg = labels > 0
    ids = np.unique(labels[fg])
    dist, (iy, ix) = ndi.distance_transform_edt(~fg, return_indices=True)
    return ids, np.ceil(dist - 1e-6).astype(np.int64), labels[iy, ix]


def _ring_sums(values: np.ndarray, ring_labels: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = int(ids.max()) + 1
    cnt = np.bincount(ring_labels.ravel(), minlength=n)[ids]
    tot = np.bincount(ring_labels.ravel(), weights=values.ravel(), minlength=n)[ids]
    return tot, cnt


def _halo(image: np.ndarray, labels: np.ndarray, ids: np.ndarray, d: np.ndarray, nearest: np.ndarray,
          max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: contrast shares at 1 .. ``max_distance`` px out (NaN where undefined) and the contrast."""
    lo, hi = max_distance + HALO_BACKGROUND[0], max_distance + HALO_BACKGROUND[1]
    ring = np.where((d >= lo) & (d <= hi), nearest, 0)
    _, n_bg = _ring_sums(image, ring, ids)
    bg = np.where(n_bg > 0, np.asarray(ndi.median(image, ring, ids), np.float64), np.nan)
    cell_sum, cell_n = _ring_sums(image, labels, ids)
    contrast = cell_sum / np.maximum(cell_n, 1) - bg
    ok = np.isfinite(contrast) & (contrast > 0)
    out = np.full((ids.size, max_distance), np.nan)
    for k in range(1, max_distance + 1):
        tot, cnt = _ring_sums(image, np.where(d == k, nearest, 0), ids)
        share = (tot / np.maximum(cnt, 1) - bg) / np.where(ok, contrast, 1.0)
        out[:, k - 1] = np.where(ok & (cnt > 0), share, np.nan)
    return out, np.where(ok, contrast, 0.0)


def halo_contrasts(image: np.ndarray, labels: np.ndarray, max_distance: int = 3) -> np.ndarray:
    """Per cell of a labelled frame, the mean intensity at whole-pixel distance ``1 .. max_distance`` outside
    the outlines, as a share of the cell's contrast: ``(ring - background) / (cell - background)``.

    Each background pixel belongs to its nearest cell; a cell's background is the median of its pixels
    ``max_distance + 3 .. max_distance + 8`` px out. Returns (cells, max_distance), NaN where a cell has no
    such pixels or no contrast (cell mean not above its background). Invariant to an affine change of the
    intensities, so real frames and a synthetic scene compare in their own units.
    """
    image = np.asarray(image, np.float64)
    labels = np.asarray(labels)
    fg = labels > 0
    if not fg.any() or fg.all():
        return np.full((np.unique(labels[fg]).size, max_distance), np.nan)
    ids, d, nearest = _rings(labels)
    return _halo(image, labels, ids, d, nearest, max_distance)[0]


def measure_halo(images: np.ndarray, labels: np.ndarray, max_distance: int = 3) -> tuple[np.ndarray, int]:
    """Mean over the cells of all frames of :func:`halo_contrasts`; returns the values and the cells used."""
    rows = [halo_contrasts(img, lab, max_distance) for img, lab in zip(images, labels, strict=True)
            if np.any(lab)]
    allc = np.concatenate(rows) if rows else np.zeros((0, max_distance))
    used = int(np.isfinite(allc).all(axis=1).sum())
    return (np.nanmean(allc, axis=0) if used else np.full(max_distance, np.nan)), used


def apply_halo(canvas: np.ndarray, labels: np.ndarray, target: Any) -> np.ndarray:
    """Bring the mean halo of a scene frame to ``target`` (contrast shares at 1 .. len(target) px outside the
    outlines): every ring pixel moves by ``(target - measured) * contrast`` of its nearest cell, an offset,
    so the noise of the background stays as it was. Returns a new array."""
    target = np.asarray(target, np.float64)
    out = np.array(canvas, np.float32, copy=True)
    labels = np.asarray(labels)
    fg = labels > 0
    if target.size == 0 or not fg.any() or fg.all():
        return out
    ids, d, nearest = _rings(labels)
    per_cell, contrast = _halo(out.astype(np.float64), labels, ids, d, nearest, target.size)
    lut = np.zeros(int(ids.max()) + 1)
    lut[ids] = contrast
    for k in range(1, target.size + 1):
        col = per_cell[:, k - 1]
        if not np.isfinite(col).any():
            continue
        sel = d == k
        out[sel] += ((target[k - 1] - float(np.nanmean(col))) * lut[nearest[sel]]).astype(np.float32)
    return out


def halo_from_video(video: Any, max_distance: int = 4) -> list[float]:
    """:func:`measure_halo` on a real :class:`~napari_bvdm.io.video.Video`: its annotated SEG frames (whole
    outlines), else its TRA labels. Raises :class:`InputError` with fewer than :data:`MIN_CELLS` usable cells."""
    labels = video.labels.get("SEG")
    if labels is None:
        labels = video.labels.get("TRA")
    if labels is None or video.image is None:
        raise InputError("the halo is measured on real frames with cell labels (SEG or TRA); none given")
    labels = np.asarray(labels)
    frames = [t for t in range(labels.shape[0]) if labels[t].any()]
    images = np.stack([np.asarray(video.image[t]) for t in frames]) if frames else np.zeros((0, 1, 1))
    values, cells = measure_halo(images, labels[frames], max_distance)
    if cells < MIN_CELLS:
        raise InputError(f"a halo needs at least {MIN_CELLS} labelled cells with a background ring; got {cells}")
    return [round(float(v), 5) for v in values]
