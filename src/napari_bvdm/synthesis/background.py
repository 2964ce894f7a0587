"""Fitted scene statistics of a real video (background level, noise, slow illumination, cell brightness)
and background generation from them.

Everything is in normalised units of :class:`~napari_bvdm.texture.normalisation.Normalisation`
(``(raw - offset) / scale``). The slow illumination is a coarse grid of background medians (blocks of
the frame), interpolated to any output size, plus row and column offsets of the background around it (the
camera's fixed pattern and narrow bands that a coarse grid smooths away, e.g. the bright top rows and the
dark column of Fluo-C2DL-MSC); the noise is Gaussian with the measured standard deviation
and the measured pixel-to-pixel correlation (white noise blurred by a Gaussian whose lag-1
autocorrelation matches).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..io.video import InputError
from ..texture.normalisation import Normalisation

__all__ = ["SceneStats", "fit_scene_stats", "generate_background", "add_shot_noise"]


@dataclass
class SceneStats:
    """Statistics a synthetic scene reproduces (normalised units).

    Attributes
    ----------
    level : median background intensity.
    noise : standard deviation of the background around its slow illumination.
    noise_corr : lag-1 autocorrelation of that noise (0 = white).
    noise_gain : signal-dependent (shot) noise: fresh noise of variance ``noise_gain * intensity`` is
        added to the cells in every frame (Poisson-Gaussian model, fitted inside real cells).
    illumination : coarse grid (gy, gx) of background medians, including ``level``.
    row_profile, col_profile : offsets of each row / column of the fitted frames' background from the
        interpolated grid (separable fixed pattern; empty = none), resampled to other output sizes.
    cell_brightness : mean and standard deviation of the cells' mean intensity.
    cell_area : median cell area in pixels (to warn about other pixel sizes).
    normalisation : the :class:`Normalisation` as a dict (raw dtype included).
    """

    level: float
    noise: float
    noise_corr: float = 0.0
    noise_gain: float = 0.0
    illumination: list[list[float]] = field(default_factory=list)
    row_profile: list[float] = field(default_factory=list)
    col_profile: list[float] = field(default_factory=list)
    cell_brightness: tuple[float, float] = (0.5, 0.1)
    cell_area: float = 0.0
    normalisation: dict[str, Any] = field(default_factory=lambda: {"offset": 0.0, "scale": 1.0, "dtype": "uint16"})
    source: str = ""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.level) and np.isfinite(self.noise) and self.noise >= 0):
            raise InputError(f"scene statistics: level {self.level} / noise {self.noise} must be finite, noise >= 0")
        if not (np.isfinite(self.noise_gain) and self.noise_gain >= 0):
            raise InputError(f"scene statistics: noise_gain {self.noise_gain} must be finite and >= 0")
        if not -1.0 < self.noise_corr < 1.0:
            raise InputError(f"scene statistics: noise_corr {self.noise_corr} must lie in (-1, 1)")
        self.cell_brightness = (float(self.cell_brightness[0]), float(self.cell_brightness[1]))
        for name in ("row_profile", "col_profile"):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if v.ndim != 1 or not np.isfinite(v).all():
                raise InputError(f"scene statistics: {name} must be a list of finite numbers")

    @property
    def norm(self) -> Normalisation:
        return Normalisation.from_dict(self.normalisation)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cell_brightness"] = list(self.cell_brightness)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SceneStats:
        known = {"level", "noise", "noise_corr", "noise_gain", "illumination", "row_profile", "col_profile",
                 "cell_brightness", "cell_area", "normalisation", "source"}
        d = {k: v for k, v in d.items() if k != "faint"}  # a measure of earlier versions, no longer used
        unknown = set(d) - known
        if unknown:
            raise InputError(f"scene statistics: unknown field(s) {sorted(unknown)}")
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> SceneStats:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise InputError(f"scene statistics file {path} does not exist") from None
        except (json.JSONDecodeError, TypeError) as e:
            raise InputError(f"scene statistics file {path} is not valid: {e}") from None

    @classmethod
    def from_shape_background(cls, background: dict[str, Any], normalisation: dict[str, Any] | None,
                              brightness: tuple[float, float] = (0.5, 0.1)) -> SceneStats:
        """Flat-illumination stats from a shape model's ``background`` section (level, noise)."""
        return cls(level=float(background.get("level", 0.0)), noise=float(background.get("noise", 0.0)),
                   cell_brightness=brightness,
                   normalisation=dict(normalisation or {"offset": 0.0, "scale": 1.0, "dtype": "uint16"}),
                   source="shape model background")


def fit_scene_stats(
    image: Any,
    labels: Any | None = None,
    normalisation: Normalisation | None = None,
    *,
    max_frames: int = 8,
    grid: int = 8,
    margin: int = 10,
    fixed_pattern: bool = True,
    source: str = "",
) -> SceneStats:
    """Fit :class:`SceneStats` from up to ``max_frames`` evenly spaced frames of a real video.

    Parameters
    ----------
    image : (T, Y, X) raw frames (numpy or lazy).
    labels : (T, Y, X) cell labels; without them, cells are pixels above an Otsu threshold.
    normalisation : units; estimated from the data when ``None``.
    grid : the illumination grid has ``grid`` blocks along the longer side.
    margin : background pixels closer than this to a cell are left out.
    fixed_pattern : fit the row and column offsets of the background (``row_profile``, ``col_profile``).

    """
    from skimage.filters import threshold_otsu

    t = image.shape[0]
    if normalisation is None:
        normalisation = Normalisation.estimate(image, labels)
    idx = np.unique(np.linspace(0, t - 1, min(t, max_frames)).round().astype(int))
    h, w = image.shape[1:]
    gy = max(1, int(round(grid * h / max(h, w))))
    gx = max(1, int(round(grid * w / max(h, w))))
    acc = _SceneSums(h, w)
    illum = np.zeros((len(idx), gy, gx))
    for k, i in enumerate(idx):
        f = normalisation.forward(np.asarray(image[i]))
        lab = np.asarray(labels[i]) if labels is not None else ndi.label(f > threshold_otsu(f))[0]
        fg = lab > 0
        bg = ~ndi.binary_dilation(fg, iterations=margin) if fg.any() else np.ones_like(fg)
        if bg.sum() < 100:
            raise InputError(f"frame {i} has almost no background (cells cover it); cannot fit background statistics")
        illum[k] = _block_medians(f, bg, gy, gx)
        if fixed_pattern and not np.isnan(illum[k]).all():
            acc.add_pattern(f, bg, illum[k])
        acc.add_noise(f, bg)
        if fg.any():
            acc.add_cells(f, lab, fg)
    noise_res, bright, areas, cell_var = acc.noise_res, acc.bright, acc.areas, acc.cell_var
    corr_num, corr_den = acc.corr_num, acc.corr_den
    row_sum, row_n, col_sum, col_n = acc.row_sum, acc.row_n, acc.col_sum, acc.col_n
    ill = np.nanmedian(illum, axis=0)
    if np.isnan(ill).all():
        raise InputError("no background block with enough pixels; cannot fit the slow illumination")
    ill = np.where(np.isnan(ill), np.nanmedian(ill), ill)
    rows, cols = _fixed_pattern(row_sum, row_n, col_sum, col_n) if fixed_pattern else ([], [])
    res = np.concatenate(noise_res)
    level = float(np.median(ill))
    noise = float(np.std(res))
    rho = float(np.clip(corr_num / max(corr_den, 1e-12), 0.0, 0.95))
    bright_arr = np.asarray(bright) if bright else np.array([0.5])
    # same residual filter on the background gives the signal-independent part to subtract
    gain = 0.0
    if cell_var:
        cm = np.asarray(cell_var, dtype=np.float64)
        # a sigma-1 local-mean residual keeps 0.76 of white-noise variance
        gain = float(max(np.median((cm[:, 1] / 0.76 - noise**2) / cm[:, 0]), 0.0))
    return SceneStats(
        level=level,
        noise=noise,
        noise_corr=rho,
        noise_gain=gain,
        illumination=ill.round(6).tolist(),
        row_profile=rows,
        col_profile=cols,
        cell_brightness=(float(np.median(bright_arr)), float(np.std(bright_arr))),
        cell_area=float(np.median(areas)) if areas else 0.0,
        normalisation=normalisation.to_dict(),
        source=source,
    )



def _block_medians(f: np.ndarray, bg: np.ndarray, gy: int, gx: int) -> np.ndarray:
    """Slow illumination: block medians of the background pixels (NaN where a block has too few)."""
    h, w = f.shape
    out = np.full((gy, gx), np.nan)
    for yy in range(gy):
        for xx in range(gx):
            sl = (slice(yy * h // gy, (yy + 1) * h // gy), slice(xx * w // gx, (xx + 1) * w // gx))
            v = f[sl][bg[sl]]
            if v.size > 50:
                out[yy, xx] = np.median(v)
    return out


class _SceneSums:
    """Running sums of :func:`fit_scene_stats` over the fitted frames."""

    def __init__(self, h: int, w: int) -> None:
        self.noise_res: list[np.ndarray] = []
        self.bright: list[float] = []
        self.areas: list[float] = []
        self.cell_var: list[tuple[float, float]] = []
        self.corr_num = self.corr_den = 0.0
        self.row_sum, self.row_n = np.zeros(h), np.zeros(h)
        self.col_sum, self.col_n = np.zeros(w), np.zeros(w)

    def add_pattern(self, f: np.ndarray, bg: np.ndarray, illum: np.ndarray) -> None:
        """Background around this frame's grid, per row and column (the fixed pattern)."""
        own = np.where(np.isnan(illum), np.nanmedian(illum), illum)
        dev = np.where(bg, f - _grid_field(own, f.shape), 0.0)
        self.row_sum += dev.sum(1)
        self.row_n += bg.sum(1)
        self.col_sum += dev.sum(0)
        self.col_n += bg.sum(0)

    def add_noise(self, f: np.ndarray, bg: np.ndarray) -> None:
        """Residual around a local background mean (normalised convolution, cells excluded)."""
        wgt = ndi.gaussian_filter(bg.astype(np.float32), 4)
        smooth = ndi.gaussian_filter(np.where(bg, f, 0).astype(np.float32), 4) / np.maximum(wgt, 1e-3)
        r = np.where(bg, f - smooth, 0)
        self.noise_res.append(r[bg])
        both = bg[:, 1:] & bg[:, :-1]
        self.corr_num += float((r[:, 1:] * r[:, :-1])[both].sum())
        self.corr_den += float((r[:, 1:] ** 2)[both].sum())

    def add_cells(self, f: np.ndarray, lab: np.ndarray, fg: np.ndarray) -> None:
        """Cell brightness and area; pixel noise inside cells around a sigma-1 local mean (mean, variance)."""
        st = ndi.generate_binary_structure(2, 1)
        ids = np.unique(lab[fg])
        means = ndi.mean(f, lab, ids)
        inner = ndi.binary_erosion(fg, st, iterations=2)
        fw = ndi.gaussian_filter(inner.astype(np.float32), 1.0)
        local = ndi.gaussian_filter(np.where(inner, f, 0).astype(np.float32), 1.0) / np.maximum(fw, 1e-3)
        res_c = np.where(inner, f - local, 0.0)
        lab_in = np.where(inner, lab, 0)
        n_in = ndi.sum(inner, lab_in, ids)
        v_in = ndi.sum(res_c**2, lab_in, ids) / np.maximum(n_in, 1)
        self.cell_var.extend([(m, v) for m, v, k in zip(means, v_in, n_in, strict=True) if k >= 30 and m > 0])
        self.bright.extend(np.asarray(means).tolist())
        self.areas.extend(np.asarray(ndi.sum(np.ones_like(f), lab, ids)).tolist())

def _lag1(sigma: float) -> float:
    """Lag-1 autocorrelation of white noise after ``scipy.ndimage.gaussian_filter`` with ``sigma``."""
    r = int(4.0 * sigma + 0.5)
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return float((k[1:] * k[:-1]).sum() / (k**2).sum()) if r > 0 else 0.0


def _blur_sigma(rho: float) -> float:
    """Gaussian blur (sigma, px) of white noise whose lag-1 autocorrelation is ``rho`` (discrete kernel)."""
    if rho <= 0.02:
        return 0.0
    lo, hi = 0.2, 20.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _lag1(mid) < rho else (lo, mid)
    return 0.5 * (lo + hi)


def _fixed_pattern(row_sum: np.ndarray, row_n: np.ndarray, col_sum: np.ndarray,
                   col_n: np.ndarray) -> tuple[list[float], list[float]]:
    """Row and column offsets (zero mean) from per-row / per-column sums of background deviations.

    Each row's (column's) offset is its mean deviation less the mean over all rows (columns); rows or
    columns with fewer than 20 background pixels get 0.
    """
    ok_r, ok_c = row_n >= 20, col_n >= 20
    if not ok_r.any() or not ok_c.any():
        return [], []
    rows = np.where(ok_r, row_sum / np.maximum(row_n, 1), 0.0)
    rows[ok_r] -= np.average(rows[ok_r], weights=row_n[ok_r])
    cols = np.where(ok_c, col_sum / np.maximum(col_n, 1), 0.0)
    cols[ok_c] -= np.average(cols[ok_c], weights=col_n[ok_c])
    return rows.round(6).tolist(), cols.round(6).tolist()


def _resample_profile(profile: list[float], n: int) -> np.ndarray:
    """A profile at ``n`` samples: as is when its length is ``n``, else mean-pooled or interpolated by
    relative position (pixel centres)."""
    p = np.asarray(profile, dtype=np.float64)
    if len(p) == n:
        return p
    if len(p) % n == 0:  # an integer downsampling (the evaluation's 1/2, 1/4 scale): block means
        return p.reshape(n, -1).mean(1)
    return np.interp((np.arange(n) + 0.5) * len(p) / n - 0.5, np.arange(len(p)), p)


def _grid_field(ill: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of a (gy, gx) grid of block values to ``shape`` (block centres)."""
    h, w = shape
    gy, gx = ill.shape
    # block centres in output coordinates
    yc = (np.arange(gy) + 0.5) * h / gy - 0.5
    xc = (np.arange(gx) + 0.5) * w / gx - 0.5
    yi = np.interp(np.arange(h), yc, np.arange(gy))
    xi = np.interp(np.arange(w), xc, np.arange(gx))
    yy, xx = np.meshgrid(yi, xi, indexing="ij")
    return ndi.map_coordinates(ill, [yy, xx], order=1, mode="nearest").astype(np.float32)


def illumination_field(stats: SceneStats, shape: tuple[int, int]) -> np.ndarray:
    """The background mean at ``shape``: bilinear from the coarse grid, plus the row and column offsets."""
    h, w = shape
    ill = np.asarray(stats.illumination, dtype=np.float64)
    out = np.full(shape, stats.level, np.float32) if ill.size == 0 else _grid_field(ill, shape)
    if stats.row_profile:
        out += _resample_profile(stats.row_profile, h).astype(np.float32)[:, None]
    if stats.col_profile:
        out += _resample_profile(stats.col_profile, w).astype(np.float32)[None, :]
    return out


def generate_background(stats: SceneStats, shape: tuple[int, int], rng: np.random.Generator,
                        illumination: np.ndarray | None = None) -> np.ndarray:
    """A background frame (normalised units, float32): slow illumination + correlated Gaussian noise.

    Pass a precomputed ``illumination`` (:func:`illumination_field`) to avoid recomputing it per frame.
    """
    base = illumination if illumination is not None else illumination_field(stats, shape)
    if stats.noise <= 0:
        return base.astype(np.float32, copy=True)
    n = rng.standard_normal(shape, dtype=np.float32)
    s = _blur_sigma(stats.noise_corr)
    if s > 0:
        n = ndi.gaussian_filter(n, s)
        n /= max(float(n.std()), 1e-6)
    return (base + stats.noise * n).astype(np.float32)


def add_shot_noise(stats: SceneStats, frame: np.ndarray, where: np.ndarray, rng: np.random.Generator,
                   share: float = 1.0) -> None:
    """Add fresh signal-dependent noise (variance ``share * noise_gain * intensity``) to ``frame[where]`` in place."""
    if stats.noise_gain <= 0 or share <= 0 or not where.any():
        return
    v = np.maximum(frame[where], 0.0) * (stats.noise_gain * share)
    frame[where] += (np.sqrt(v) * rng.standard_normal(v.shape)).astype(frame.dtype)
