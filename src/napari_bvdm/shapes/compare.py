"""Compare a simulated mask video with the real one: two-sample KS statistics, table and figure.

Features (the same code measures both videos):

- ``area``, ``eccentricity``, ``solidity``: objects of the full-mask labels that do not touch the
  border (the fitted model describes whole cells; border cells are cut in both videos alike);
- ``step``: centroid displacement of a track between consecutive frames (tracking labels; unlinked
  labels are linked by nearest-centroid matching first);
- ``cells_per_frame``: objects per frame of the tracking labels;
- ``nn_distance``: distance from each object to its nearest neighbour (extra, not in the target list).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial import cKDTree

from ..io.video import Video
from .contours import clean_labels, measure_frame
from .fit import choose_labels, link_by_nearest_centroid

__all__ = ["ComparisonReport", "compare", "population_features", "FEATURES"]

FEATURES = ("area", "eccentricity", "solidity", "step", "cells_per_frame", "nn_distance")
_TITLES = {
    "area": "area (px)",
    "eccentricity": "eccentricity",
    "solidity": "solidity",
    "step": "step length (px/frame)",
    "cells_per_frame": "cells per frame",
    "nn_distance": "nearest-neighbour distance (px)",
}


def population_features(
    track_labels: Any,
    shape_labels: Any | None = None,
    shape_frames: list[int] | None = None,
    *,
    linked: bool = True,
    max_distance: float | None = None,
) -> dict[str, np.ndarray]:
    """Measure the compared features of a label video.

    Parameters
    ----------
    track_labels : (T, Y, X) labels with track ids in every frame.
    shape_labels : full-mask labels (defaults to ``track_labels``).
    shape_frames : frames of ``shape_labels`` to measure (defaults to all).
    linked : whether ids in ``track_labels`` are persistent track ids.
    max_distance : nearest-centroid matching distance for unlinked labels (default 1.5 x median diameter).
    """
    t_n = int(track_labels.shape[0])
    shape_labels = track_labels if shape_labels is None else shape_labels
    shape_frames = list(range(t_n)) if shape_frames is None else list(shape_frames)
    feats: dict[str, list[float]] = {k: [] for k in FEATURES}
    per_frame = []
    for t in range(t_n):
        recs = measure_frame(np.asarray(track_labels[t]), t, with_radii=False)
        per_frame.append(recs)
        feats["cells_per_frame"].append(len(recs))
        if len(recs) >= 2:
            c = np.array([r.centroid for r in recs])
            d, _ = cKDTree(c).query(c, k=2)
            feats["nn_distance"].extend(d[:, 1].tolist())
    same = shape_labels is track_labels
    for t in shape_frames:
        if same:
            recs = per_frame[t]
        else:
            recs = measure_frame(clean_labels(np.asarray(shape_labels[t]))[0], t, with_radii=False)
        for r in recs:
            if not r.touches_border:
                feats["area"].append(r.area)
                feats["eccentricity"].append(r.eccentricity)
                feats["solidity"].append(r.solidity)
    if not linked:
        areas = [r.area for recs in per_frame for r in recs] or [1.0]
        md = max_distance or 1.5 * 2 * np.sqrt(np.median(areas) / np.pi)
        ids = link_by_nearest_centroid([np.array([r.centroid for r in recs]).reshape(-1, 2) for recs in per_frame], md)
        for recs, idt in zip(per_frame, ids, strict=True):
            for r, i in zip(recs, idt, strict=True):
                r.label = int(i)
    for t in range(t_n - 1):
        nxt = {r.label: r for r in per_frame[t + 1]}
        for r in per_frame[t]:
            s = nxt.get(r.label)
            if s is not None:
                feats["step"].append(float(np.hypot(s.centroid[0] - r.centroid[0], s.centroid[1] - r.centroid[1])))
    return {k: np.asarray(v, dtype=np.float64) for k, v in feats.items()}


def _video_features(v: Any) -> dict[str, np.ndarray]:
    from .simulate import MaskVideo

    if isinstance(v, MaskVideo):
        v = v.to_video()
    if isinstance(v, Video):
        track_kind, tl, linked, shape_kind, sl, sf = choose_labels(v)
        return population_features(tl, sl if shape_kind != track_kind else None, sf, linked=linked)
    if isinstance(v, dict):  # precomputed features
        return {k: np.asarray(x) for k, x in v.items()}
    return population_features(np.asarray(v))


@dataclass
class ComparisonReport:
    """KS statistics of simulated vs real feature distributions.

    Attributes
    ----------
    rows : one dict per feature: ``feature, n_real, n_sim, median_real, median_sim, ks, p_value``.
    real, sim : the measured samples (for plots).
    """

    rows: list[dict[str, Any]]
    real: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    sim: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    def ks(self, feature: str) -> float:
        return float(next(r["ks"] for r in self.rows if r["feature"] == feature))

    @property
    def max_ks(self) -> float:
        """Largest KS statistic over the five target features (area ... cells per frame)."""
        vals = [r["ks"] for r in self.rows if r["feature"] != "nn_distance" and np.isfinite(r["ks"])]
        return float(max(vals)) if vals else float("nan")

    def table(self) -> str:
        """A Markdown table."""
        out = ["| feature | n real | n sim | median real | median sim | KS | p |", "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            out.append(
                f"| {r['feature']} | {r['n_real']} | {r['n_sim']} | {r['median_real']:.4g} | "
                f"{r['median_sim']:.4g} | {r['ks']:.3f} | {r['p_value']:.3g} |"
            )
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "max_ks": self.max_ks}

    def figure(self, figsize: tuple[float, float] = (12, 7)):
        """A matplotlib :class:`~matplotlib.figure.Figure` (no pyplot, no GUI backend): one ECDF per feature."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
        axes = fig.subplots(2, 3).ravel()
        for ax, r in zip(axes, self.rows, strict=False):
            k = r["feature"]
            series = ((self.real.get(k), "real", "tab:blue"), (self.sim.get(k), "simulated", "tab:orange"))
            for data, lab, col in series:
                if data is None or len(data) == 0:
                    continue
                x = np.sort(data)
                ax.step(x, np.arange(1, len(x) + 1) / len(x), where="post", label=f"{lab} (n={len(x)})", color=col)
            ax.set_title(f"{_TITLES.get(k, k)}: KS {r['ks']:.3f}")
            ax.set_ylabel("cumulative share")
            ax.legend(fontsize="small", loc="lower right")
        fig.suptitle("simulated vs real: empirical distributions")
        return fig


def compare(real: Any, sim: Any) -> ComparisonReport:
    """Two-sample KS comparison of a simulated video with a real one.

    Parameters
    ----------
    real : :class:`~napari_bvdm.io.video.Video` (tracking + full-mask labels are chosen as for fitting),
        a (T, Y, X) label array, or a feature dict from :func:`population_features`.
    sim : :class:`~napari_bvdm.shapes.simulate.MaskVideo`, Video, label array or feature dict.
    """
    fr = _video_features(real)
    fs = _video_features(sim)
    rows = []
    for k in FEATURES:
        a, b = fr.get(k, np.zeros(0)), fs.get(k, np.zeros(0))
        if len(a) and len(b):
            res = stats.ks_2samp(a, b)
            ks, p = float(res.statistic), float(res.pvalue)
        else:
            ks, p = float("nan"), float("nan")
        rows.append({
            "feature": k,
            "n_real": int(len(a)),
            "n_sim": int(len(b)),
            "median_real": float(np.median(a)) if len(a) else float("nan"),
            "median_sim": float(np.median(b)) if len(b) else float("nan"),
            "ks": ks,
            "p_value": p,
        })
    return ComparisonReport(rows=rows, real=fr, sim=fs)
