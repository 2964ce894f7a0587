"""Fit the shape, motion and population model on a real label video.

Tracks (motion, population, divisions) come from the tracking labels (``TRA``, or a plain label video
with a lineage); unlinked labels (``ERR_SEG``, ``SEG``, ``ST``) are linked by nearest-centroid
matching. Shapes, sizes and brightness come from the full masks (``ST``, then ``SEG`` frames, then the
other kinds): GOWT1's TRA markers are smaller than the nuclei, so they are used for tracking only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from scipy import ndimage as ndi
from scipy import stats
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from skimage import measure

from ..io.linking import check_linked
from ..io.video import InputError, Video
from ..runtime.progress import CancelToken, Job, Progress
from .contours import ObjectRecord, clean_labels, measure_frame
from .model import N_QUANTILES, PAUSE_EPS, FitConfig, ShapeModel

if TYPE_CHECKING:
    from ..texture.normalisation import Normalisation

__all__ = ["fit_shape_model", "choose_labels", "link_by_nearest_centroid", "quantiles", "normal_scores"]

_LEVELS = np.linspace(0.0, 1.0, N_QUANTILES)


def quantiles(x: np.ndarray) -> np.ndarray:
    """The model's quantile table (0, 1, ..., 100 %) of a sample."""
    return np.quantile(np.asarray(x, dtype=np.float64), _LEVELS)


def normal_scores(x: np.ndarray) -> np.ndarray:
    """Rank-based normal scores (the Gaussian copula of a sample)."""
    r = stats.rankdata(x)
    return stats.norm.ppf((r - 0.5) / len(r))


def _lag1(a: np.ndarray, b: np.ndarray, default: float) -> float:
    """Correlation of paired normal scores, clipped to [0, 0.999]."""
    if len(a) < 8:
        return default
    both = normal_scores(np.concatenate([a, b]))
    za, zb = both[: len(a)], both[len(a):]
    if np.std(za) == 0 or np.std(zb) == 0:
        return default
    return float(np.clip(np.corrcoef(za, zb)[0, 1], 0.0, 0.999))


def _score_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of the normal scores of two paired samples (0 with fewer than 8 pairs or no spread),
    clipped to [-0.95, 0.95]."""
    if len(a) < 8:
        return 0.0
    za, zb = normal_scores(a), normal_scores(b)
    if np.std(za) == 0 or np.std(zb) == 0:
        return 0.0
    return round(float(np.clip(np.corrcoef(za, zb)[0, 1], -0.95, 0.95)), 4)


def _max_log_step(changes: np.ndarray, default: float = 0.25) -> float:
    """Largest area change per frame a simulated cell may make, in log units.

    With at least 200 observed frame-to-frame changes of the same cell (dense labels), their 99 % quantile
    of ``|log(area ratio)|`` (SIM+: 0.61, real cells do change fast now and then); with fewer (sparse SEG
    frames: GOWT1 has 29 pairs, two of them mis-annotated) four robust standard deviations (scaled median
    absolute deviation), so a few odd pairs do not set it; ``default`` (x 1.28 per frame) below 8 pairs.
    """
    if len(changes) < 8:
        return default
    if len(changes) >= 200:
        return float(np.clip(np.quantile(np.abs(changes), 0.99), 0.05, 1.0))
    sigma = 1.4826 * float(np.median(np.abs(changes - np.median(changes))))
    return float(np.clip(4.0 * sigma, 0.05, 1.0))


def choose_labels(video: Video) -> tuple[str, Any, bool, str, Any, list[int]]:
    """Pick the tracking labels and the full-mask labels of a video.

    Returns
    -------
    track_kind, track_labels, linked, shape_kind, shape_labels, shape_frames
    """
    if not video.labels:
        raise InputError(
            f"{video.source or 'the video'} has no labels: the shape model is fitted on a label video "
            "(CTC TRA/SEG/ST/ERR_SEG folder or a napari Labels layer)"
        )
    t = video.n_frames
    track_kind = next(k for k in ("TRA", "labels", "ST", "ERR_SEG", "SEG") if k in video.labels)
    if track_kind == "SEG" and len(video.seg_frames) not in (0, t):
        raise InputError(
            "only sparse SEG annotation is available: tracking statistics need labels in every frame "
            "(TRA, ST, ERR_SEG or a label video)"
        )
    linked = track_kind == "TRA" or (track_kind == "labels" and video.lineage is not None)
    if track_kind == "labels" and not linked:
        linked = check_linked(video.labels["labels"]).linked
    shape_kind = next(k for k in ("ST", "SEG", "labels", "ERR_SEG", "TRA") if k in video.labels)
    if shape_kind == "SEG" and video.seg_frames:
        shape_frames = sorted(int(f) for f in video.seg_frames)
    else:
        shape_frames = list(range(t))
    return track_kind, video.labels[track_kind], linked, shape_kind, video.labels[shape_kind], shape_frames


def link_by_nearest_centroid(
    centroids: list[np.ndarray], max_distance: float
) -> list[np.ndarray]:
    """Track ids for per-frame centroid lists by optimal one-to-one matching of consecutive frames.

    Parameters
    ----------
    centroids : list of (N_t, 2) arrays
        Object centroids per frame.
    max_distance : float
        Matches farther apart start a new track.

    Returns
    -------
    list of (N_t,) int arrays: the track id of each object.
    """
    ids: list[np.ndarray] = []
    next_id = 1
    for t, c in enumerate(centroids):
        cur = np.zeros(len(c), dtype=np.int64)
        if t > 0 and len(c) and len(centroids[t - 1]):
            prev = centroids[t - 1]
            d = np.linalg.norm(prev[:, None, :] - c[None, :, :], axis=2)
            r, k = linear_sum_assignment(np.where(d <= max_distance, d, 1e9))
            for i, j in zip(r, k, strict=True):
                if d[i, j] <= max_distance:
                    cur[j] = ids[t - 1][i]
        for j in np.flatnonzero(cur == 0):
            cur[j] = next_id
            next_id += 1
        ids.append(cur)
    return ids


_Pair = tuple[ObjectRecord, ObjectRecord]


class _Inputs(NamedTuple):
    """The labels a fit uses, their size, and the image normalisation."""

    track_kind: str
    track_labels: Any
    linked: bool
    shape_kind: str
    shape_labels: Any
    shape_frames: list[int]
    n_frames: int
    height: int
    width: int
    norm: Normalisation | None

    @property
    def same(self) -> bool:
        """Whether the tracking labels are also the full masks."""
        return self.shape_kind == self.track_kind


class _Measured(NamedTuple):
    """Object records of the measured frames and the label repairs made on them."""

    track_recs: list[list[ObjectRecord]]
    shape_recs: dict[int, list[ObjectRecord]]
    n_holes: int
    n_frag: int


def _normalised_frame(video: Video, t: int, norm: Normalisation | None) -> np.ndarray | None:
    """Frame ``t`` of the image in normalised units (``None`` without an image)."""
    if video.image is None or norm is None:
        return None
    return norm.forward(np.asarray(video.image[t]))


def fit_shape_model(
    video: Video, config: FitConfig | None = None, *, cancel: CancelToken | None = None
) -> Job[ShapeModel]:
    """Fit a :class:`ShapeModel` on a label video (and the image beside it, when there is one).

    Yields :class:`~napari_bvdm.runtime.progress.Progress` per measured frame; returns the model.

    Raises
    ------
    InputError
        No labels, fewer than 3 measurable objects, only border-touching objects, or a single frame
        where motion statistics are needed.
    """
    config = config or FitConfig()
    inp = _fit_inputs(video, config)
    total = inp.n_frames + (0 if inp.same else len(inp.shape_frames))
    measured = yield from _measure_frames(video, config, inp, total, cancel)
    track_recs, shape_recs = measured.track_recs, measured.shape_recs
    all_shape, inner, with_radii = _usable_objects(shape_recs)
    lineage = _link_tracks(video, config, inp, track_recs, shape_recs, all_shape)

    params = _estimate(config, track_recs, shape_recs, inner, with_radii, lineage, inp.height, inp.width, inp.norm,
                       video, inp.track_labels)
    outlines = _kept_outlines(config, with_radii)
    if outlines is not None:
        params["outlines"] = outlines
    model = ShapeModel(params=params, config=config, source=_source_summary(video, inp, measured, with_radii),
                       normalisation=inp.norm.to_dict() if inp.norm is not None else None)
    if config.calibration_frames:
        yield Progress(total - 1, total, "calibrating motion by simulation", stage="fit")
        _calibrate_by_simulation(model, config.calibration_frames, cancel)
    yield Progress(total, total, "model fitted", stage="fit")
    return model


def _fit_inputs(video: Video, config: FitConfig) -> _Inputs:
    """Choose and check the labels, estimate the image normalisation and thin out the shape frames.

    Raises
    ------
    InputError
        No labels, a single frame, or an image whose shape differs from the labels'.
    """
    from ..texture.normalisation import Normalisation

    track_kind, track_labels, linked, shape_kind, shape_labels, shape_frames = choose_labels(video)
    n_frames, height, width = (int(s) for s in track_labels.shape)
    if n_frames < 2:
        raise InputError("the label video has a single frame: motion and population need at least 2 frames")
    norm = None
    if video.image is not None:
        if tuple(video.image.shape) != (n_frames, height, width):
            raise InputError(
                f"image shape {tuple(video.image.shape)} differs from the labels' {(n_frames, height, width)}"
            )
        norm = Normalisation.estimate(video.image, track_labels)
    if len(shape_frames) > config.max_shape_frames:
        pick = np.linspace(0, len(shape_frames) - 1, config.max_shape_frames).round().astype(int)
        shape_frames = [shape_frames[i] for i in np.unique(pick)]
    return _Inputs(track_kind, track_labels, linked, shape_kind, shape_labels, shape_frames, n_frames, height,
                   width, norm)


def _measure_labels(
    labels: Any, t: int, video: Video, config: FitConfig, norm: Normalisation | None, *, with_radii: bool = True
) -> tuple[list[ObjectRecord], np.ndarray, int, int]:
    """Clean and measure frame ``t`` of a label video.

    Returns
    -------
    records (objects of at least ``min_object_area``), cleaned label frame, holes filled, fragments removed
    """
    lab, holes, frags = clean_labels(np.asarray(labels[t]))
    img = _normalised_frame(video, t, norm)
    keep_points = config.outline_points if config.keep_outlines else 0
    recs = measure_frame(lab, t, img, n_points=config.n_points, min_area=config.min_object_area,
                         with_radii=with_radii, outline_points=keep_points)
    return [r for r in recs if r.area >= config.min_object_area], lab, holes, frags


def _measure_frames(
    video: Video, config: FitConfig, inp: _Inputs, total: int, cancel: CancelToken | None
) -> Generator[Progress, None, _Measured]:
    """Measure every tracking frame, then (when they differ) the full-mask frames.

    Yields one :class:`Progress` per frame. A full mask takes the track id of the tracking label it
    overlaps most (``-label - 1`` when it overlaps none).
    """
    track_recs: list[list[ObjectRecord]] = []
    shape_recs: dict[int, list[ObjectRecord]] = {}
    shape_set = set(inp.shape_frames)
    step = n_holes = n_frag = 0
    for t in range(inp.n_frames):
        if cancel is not None:
            cancel.check()
        in_shapes = inp.same and t in shape_set
        recs, _, holes, frags = _measure_labels(inp.track_labels, t, video, config, inp.norm, with_radii=in_shapes)
        n_holes += holes
        n_frag += frags
        track_recs.append(recs)
        if in_shapes:
            shape_recs[t] = recs
        step += 1
        yield Progress(step, total, f"measuring {inp.track_kind} frame {t}", stage="fit")
    if not inp.same:
        for t in inp.shape_frames:
            if cancel is not None:
                cancel.check()
            recs, lab, holes, frags = _measure_labels(inp.shape_labels, t, video, config, inp.norm)
            n_holes += holes
            n_frag += frags
            tl = np.asarray(inp.track_labels[t])
            for r in recs:
                vals = tl[lab == r.label]
                vals = vals[vals > 0]
                r.label = int(np.bincount(vals).argmax()) if len(vals) else -r.label - 1
            shape_recs[t] = recs
            step += 1
            yield Progress(step, total, f"measuring {inp.shape_kind} frame {t}", stage="fit")
    return _Measured(track_recs, shape_recs, n_holes, n_frag)


def _usable_objects(
    shape_recs: dict[int, list[ObjectRecord]]
) -> tuple[list[ObjectRecord], list[ObjectRecord], list[ObjectRecord]]:
    """All full-mask objects, those clear of the border, and those of these with radii.

    Raises
    ------
    InputError
        No objects, only border-touching ones, or fewer than 3 complete outlines.
    """
    all_shape = [r for t in sorted(shape_recs) for r in shape_recs[t]]
    if not all_shape:
        raise InputError("the label video holds no objects (all frames are empty)")
    inner = [r for r in all_shape if not r.touches_border]
    if not inner:
        raise InputError(
            "every object touches the image border, so no complete outline can be measured: "
            "use labels with cells fully inside the field of view"
        )
    with_radii = [r for r in inner if r.radii is not None]
    if len(with_radii) < 3:
        raise InputError(
            f"only {len(with_radii)} complete object outline(s) in the labels: the shape model needs at "
            "least 3 (more frames or more cells)"
        )
    return all_shape, inner, with_radii


def _link_tracks(
    video: Video, config: FitConfig, inp: _Inputs, track_recs: list[list[ObjectRecord]],
    shape_recs: dict[int, list[ObjectRecord]], all_shape: list[ObjectRecord],
) -> np.ndarray | None:
    """The lineage (L B E P) of linked labels; unlinked labels get track ids by nearest-centroid matching.

    Relabels ``track_recs`` (and ``shape_recs``, when they are the same objects) in place; unlinked labels
    have no lineage (``None``).
    """
    if inp.linked:
        return np.asarray(video.lineage, dtype=np.int64).reshape(-1, 4) if video.lineage is not None else None
    eq_d = 2 * np.sqrt(np.median([r.area for r in all_shape]) / np.pi)
    max_d = config.match_max_distance or 1.5 * eq_d
    ids = link_by_nearest_centroid([np.array([r.centroid for r in recs]).reshape(-1, 2) for recs in track_recs],
                                   max_d)
    for recs, idt in zip(track_recs, ids, strict=True):
        for r, i in zip(recs, idt, strict=True):
            r.label = int(i)
    if inp.same:
        for t in shape_recs:
            shape_recs[t] = track_recs[t]
    return None


def _kept_outlines(config: FitConfig, with_radii: list[ObjectRecord]) -> dict[str, np.ndarray] | None:
    """Up to ``config.keep_outlines`` evenly picked real outlines (``None`` when none are kept)."""
    outlines = [r.outline for r in with_radii if r.outline is not None]
    if not (config.keep_outlines and outlines):
        return None
    n_keep = min(config.keep_outlines, len(outlines))
    pick = np.unique(np.linspace(0, len(outlines) - 1, n_keep).round().astype(int))
    return {"polygons": np.round(np.stack([outlines[i] for i in pick]), 4)}


def _source_summary(video: Video, inp: _Inputs, measured: _Measured, with_radii: list[ObjectRecord]) -> dict:
    """The model's ``source`` record: what was fitted on and what was measured."""
    return {
        "path": video.source,
        "n_frames": inp.n_frames,
        "height": inp.height,
        "width": inp.width,
        "track_kind": inp.track_kind,
        "linked": bool(inp.linked),
        "pixel_size": video.meta.get("pixel_size") if video.meta else None,
        "shape_kind": inp.shape_kind,
        "n_shape_frames": len(measured.shape_recs),
        "n_shape_objects": len(with_radii),
        "n_track_objects": int(sum(len(r) for r in measured.track_recs)),
        "labels_with_holes": int(measured.n_holes),
        "fragmented_labels": int(measured.n_frag),
    }


def _calibrate_by_simulation(model: ShapeModel, frames: int, cancel: CancelToken | None, rounds: int = 3) -> None:
    """Correct the step and size samplers so that *measured* simulated masks match the real ones.

    A simulated cell's centroid also moves when its outline changes and when neighbours push it, and
    whole (non-border) objects are measured smaller than they are drawn (big cells touch the border more
    often; neighbours clip each other; daughters start small). Each round simulates videos like the
    fitted one (its size, density, divisions and entries; at most ``frames`` long), measures centroid
    steps and whole-object areas, and rescales the step sampler quantile by quantile and the size
    sampler by one factor (target / measured).
    """
    from .simulate import SimulationConfig, simulate_masks

    mot, area, pop = model.params["motion"], model.params["area"], model.params["population"]
    nn_target = pop["nn_quantiles"]
    sh = model.params["shape"]
    # minor / major axis ratios of the real objects (the eccentricity table stands in for the sample)
    ratio_target = np.sqrt(1 - np.clip(model.params["eccentricity"]["quantiles"][1:-1], 0, 1) ** 2)
    step_target, area_target = mot["moving_step_quantiles"], area["target_quantiles"]
    src = model.source
    h, w = max(int(src["height"]), 16), max(int(src["width"]), 16)
    cells = max(1, int(round(model.params["population"]["cells_mean"])))
    frames = max(2, min(frames, int(src.get("n_frames", frames))))
    runs = int(min(3, max(1, np.ceil(60 / cells))))  # sizes persist: independence comes from cells
    for i in range(rounds):
        steps, areas, nn, ratios = [], [], [], []

        def sink(t: int, f: np.ndarray, areas: list = areas, ratios: list = ratios) -> None:
            counts = np.bincount(f.ravel())
            edge = np.unique(np.concatenate([f[0], f[-1], f[:, 0], f[:, -1]]))
            ok = counts > 0
            ok[0] = False
            ok[edge] = False
            areas.extend(counts[ok].tolist())
            ratios.extend(_axis_ratios(f, np.flatnonzero(ok)).tolist())

        for j in range(runs):
            if cancel is not None:
                cancel.check()
            cfg = SimulationConfig(frames=frames, height=h, width=w, seed=1000 + 10 * i + j)
            job = simulate_masks(model, cfg, sink=sink, cancel=cancel)
            try:
                while True:
                    next(job)
            except StopIteration as stop:
                sim = stop.value
            for lab, c in sim.centroids.items():  # steps into paused frames are modelled apart
                if len(c) > 1:
                    steps.append(np.hypot(*np.diff(c, axis=0).T)[~sim.paused[lab][1:]])
            nn.extend(_nn_distances(sim))
        steps = np.concatenate(steps) if steps else np.zeros(0)
        if len(nn) >= 50 and nn_target[10] > 0:  # spacing: the close pairs (contacts), not the density
            measured_nn = float(np.quantile(nn, 0.10))
            factor = float(np.clip(nn_target[10] / max(measured_nn, 1e-6), 0.85, 1.2))
            pop["spacing"] = float(np.clip(pop["spacing"] * factor, 0.8, 2.0))
        if len(steps) >= 50:  # steps: quantile by quantile (many, nearly independent samples)
            measured = quantiles(steps)
            ratio = np.where(measured > 1e-6, step_target / np.maximum(measured, 1e-6), 1.0)
            ratio[0] = ratio[1]  # the minimum of a sample is too noisy to steer by
            new = mot["sampler_step_quantiles"] * np.clip(ratio, 0.2, 5.0)
            mot["sampler_step_quantiles"] = np.maximum.accumulate(np.clip(new, 0, None))
        if len(ratios) >= 20:  # elongation: the median (a - b) / (a + b) of whole objects
            factor = float(np.clip(_elongation(ratio_target) / _elongation(np.asarray(ratios)), 0.7, 1.3))
            sh["elongation"] = float(np.clip(sh["elongation"] * factor, 0.3, 3.0))
        if len(areas) >= 20:  # sizes: level and spread in log units (sizes persist: few independent samples)
            la, lt = np.log(np.maximum(areas, 1.0)), np.log(np.maximum(area_target, 1.0))
            shift = float(np.clip(np.median(lt) - np.median(la), np.log(0.8), np.log(1.25)))
            lo = hi = 1.0
            if len(areas) >= 200 and model.params["division"]["count"] >= 10:
                # daughters add small cells that the sampler's table already holds: narrow it
                m10, m50, m90 = np.quantile(la, [0.1, 0.5, 0.9])  # each half of the table on its own
                lo = float(np.clip((lt[50] - lt[10]) / max(m50 - m10, 1e-6), 0.7, 1.3))
                hi = float(np.clip((lt[90] - lt[50]) / max(m90 - m50, 1e-6), 0.7, 1.3))
            ls = np.log(np.maximum(area["sampler_quantiles"], 1.0))
            mid = float(np.median(ls))
            area["sampler_quantiles"] = np.exp(mid + np.where(ls < mid, lo, hi) * (ls - mid) + shift)


def _elongation(axis_ratios: np.ndarray) -> float:
    """Median (a - b) / (a + b) of objects with minor / major axis ratios b / a."""
    return max(float(np.median((1 - axis_ratios) / (1 + axis_ratios))), 1e-3)


def _axis_ratios(frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Minor / major axis ratio (second moments) of the given labels of one frame: the moments behind
    skimage's ``eccentricity`` (``sqrt(1 - ratio**2)``), for all labels at once with ``bincount`` because the
    calibration measures every simulated frame (``measure_frame`` per object would dominate the fit)."""
    if not len(labels):
        return np.zeros(0)
    yy, xx = np.nonzero(frame)
    lab = frame[yy, xx].astype(np.int64)
    n = int(frame.max()) + 1
    w = np.bincount(lab, minlength=n).astype(np.float64)
    my, mx = np.bincount(lab, yy, n) / np.maximum(w, 1), np.bincount(lab, xx, n) / np.maximum(w, 1)
    dy, dx = yy - my[lab], xx - mx[lab]
    syy = np.bincount(lab, dy * dy, n)[labels]
    sxx = np.bincount(lab, dx * dx, n)[labels]
    sxy = np.bincount(lab, dy * dx, n)[labels]
    tr, det = syy + sxx, syy * sxx - sxy**2
    disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0))
    l1, l2 = tr / 2 + disc, np.maximum(tr / 2 - disc, 0)
    return np.sqrt(l2 / np.maximum(l1, 1e-12))


def _nn_distances(sim) -> list[float]:
    """Nearest-neighbour centroid distances per frame of a simulated :class:`MaskVideo`."""
    by_frame: dict[int, list] = defaultdict(list)
    for lab, b, _e, _p in sim.lineage:
        for k, c in enumerate(sim.centroids[int(lab)]):
            by_frame[int(b) + k].append(c)
    return [d for pts in by_frame.values() for d in _nearest_neighbour(pts)]


def _nearest_neighbour(points) -> list[float]:
    """Distance from each point of one frame to its nearest other point (none for fewer than 2 points)."""
    if len(points) < 2:
        return []
    pts = np.asarray(points, dtype=np.float64)
    d, _ = cKDTree(pts).query(pts, k=2)
    return d[:, 1].tolist()


AUTO_SHARES = (0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def _roughness_q(x, mean, comps, var) -> np.ndarray:
    z = (x - mean) @ comps.T / np.sqrt(var)
    rough = np.sqrt(np.mean(z**2, axis=1))
    return quantiles(rough / np.sqrt(np.mean(rough**2)))


def _choose_modes(x, mean, vt, var, share, recs, n_samples: int = 200) -> tuple[int, bool]:
    """Automatic mode count: the share in :data:`AUTO_SHARES` (with or without the roughness scale
    mixture) whose sampled outlines best match the real solidity distribution (two-sample KS).

    High modes hold both real outline roughness (SIM+) and pixel noise of the measurement (smooth
    GOWT1 nuclei): no single share fits both, the data decides.
    """
    from ..runtime.seeding import numpy_rng
    from .contours import rasterise

    real_sol = np.array([r.solidity for r in recs])
    areas = np.array([r.area for r in recs])
    best, best_k, best_mix = 2.0, 1, False
    seen = set()
    for target, mix in [(t, m) for t in AUTO_SHARES for m in (False, True)]:
        k = int(np.searchsorted(np.cumsum(share), target - 1e-12) + 1)
        k = max(1, min(k, len(x) - 1, len(var)))
        if (k, mix) in seen:
            continue
        seen.add((k, mix))
        rng = numpy_rng(0, "choose-modes")
        rq = _roughness_q(x, mean, vt[:k], var[:k]) if mix else np.ones(N_QUANTILES)
        sol = []
        for _ in range(n_samples):
            sc = float(np.interp(rng.uniform(), _LEVELS, rq))
            r = np.maximum(mean + (sc * rng.standard_normal(k) * np.sqrt(var[:k])) @ vt[:k], 0.05)
            a = float(areas[rng.integers(len(areas))])
            size = int(4 * np.sqrt(a) + 8)
            rr, cc = rasterise(r, a, float(rng.uniform(-np.pi, np.pi)), (size / 2, size / 2), (size, size))
            m = np.zeros((size, size), np.uint8)
            m[rr, cc] = 1
            props = measure.regionprops(m)
            if props:
                sol.append(props[0].solidity)
        ks = stats.ks_2samp(real_sol, sol).statistic if sol else 1.0
        if ks < best - 1e-9:
            best, best_k, best_mix = ks, k, mix
    return best_k, best_mix


def _estimate(
    config: FitConfig, track_recs: list[list[ObjectRecord]], shape_recs: dict[int, list[ObjectRecord]],
    inner: list[ObjectRecord], with_radii: list[ObjectRecord], lineage: np.ndarray | None, height: int, width: int,
    norm: Normalisation | None, video: Video, track_labels: Any,
) -> dict[str, dict[str, Any]]:
    """All model parameters but the kept outlines, from the measured objects.

    Raises
    ------
    InputError
        No object appears in two consecutive frames.
    """
    n_frames = len(track_recs)
    x, mean, comps, var, share, mixture = _contour_pca(config, with_radii)
    pairs = _annotated_pairs(shape_recs)
    mode_rho, rough_q, rho_shape = _shape_persistence(x, mean, comps, var, mixture, pairs)
    track_pairs = _track_pairs(track_recs)
    area_src, rho_area, max_log_step = _area_persistence(pairs, track_pairs)
    bq, rho_b, area_corr = _brightness(inner, area_src)
    motion = _motion_params(track_pairs)
    counts = np.array([len(r) for r in track_recs], dtype=np.float64)
    first, last = _first_and_last(track_recs)
    parents, has_parent = _lineage_sets(lineage)
    population = _population_params(track_recs, counts, first, last, parents, has_parent, height, width)
    division, stage_factor = _division_params(config, track_recs, lineage, first, last, parents, float(counts.sum()))
    # The size sampler starts from the real whole-object sizes (daughters included: the simulated
    # daughters start from the mother's size and relax to it); border and crowding effects are
    # calibrated by simulation.
    area_target = quantiles([r.area for r in inner])
    return {
        "shape": {"n_points": int(config.n_points), "mean": mean, "components": comps, "variances": var,
                  "explained": share, "rho": rho_shape, "mode_rho": mode_rho,
                  "roughness_quantiles": rough_q, "elongation": 1.0},
        "area": {"quantiles": quantiles([r.area for r in inner]), "target_quantiles": area_target,
                 "sampler_quantiles": area_target.copy(), "rho": rho_area, "max_log_step": max_log_step},
        "eccentricity": {"quantiles": quantiles([r.eccentricity for r in inner])},
        "solidity": {"quantiles": quantiles([r.solidity for r in inner])},
        "brightness": {"quantiles": bq, "rho": rho_b, "stage_factor": stage_factor, "area_corr": area_corr},
        "motion": motion,
        "population": population,
        "division": division,
        "background": _background_params(video, norm, track_labels, n_frames),
    }


def _contour_pca(
    config: FitConfig, with_radii: list[ObjectRecord]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """PCA of the size-normalised radii of complete outlines.

    Returns
    -------
    x (objects, n_points), mean, components (kept modes, n_points), variances, explained shares,
    mixture (whether the roughness scale mixture is used)
    """
    x = np.stack([r.radii for r in with_radii])
    mean = x.mean(axis=0)
    xc = x - mean
    if len(x) >= 2 and np.any(xc):
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        var = s**2 / (len(x) - 1)
        share = var / var.sum()
        kmax = max(1, min(len(x) - 1, len(var)))
        if config.variance_share > 0:
            k = int(np.searchsorted(np.cumsum(share), config.variance_share - 1e-12) + 1)
            mixture = True
        else:
            k, mixture = _choose_modes(x, mean, vt, var, share, with_radii)
        k = max(1, min(k, kmax))
        comps, var, share = vt[:k], var[:k], share[:k]
    else:
        comps, var, share = np.zeros((0, len(mean))), np.zeros(0), np.zeros(0)
        mixture = False
    return x, mean, comps, var, share, mixture


def _annotated_pairs(shape_recs: dict[int, list[ObjectRecord]]) -> list[_Pair]:
    """Full masks of the same track in consecutive annotated frames."""
    by_key = {(r.frame, r.label): r for t in shape_recs for r in shape_recs[t] if r.label > 0}
    return [(a, by_key[(a.frame + 1, a.label)]) for (f, lab), a in by_key.items() if (f + 1, lab) in by_key]


def _track_pairs(track_recs: list[list[ObjectRecord]]) -> list[_Pair]:
    """Tracking objects of the same track in consecutive frames."""
    track_pairs = []
    by_track = [{r.label: r for r in recs} for recs in track_recs]
    for t in range(len(track_recs) - 1):
        for lab, a in by_track[t].items():
            b = by_track[t + 1].get(lab)
            if b is not None:
                track_pairs.append((a, b))
    return track_pairs


def _shape_persistence(
    x: np.ndarray, mean: np.ndarray, comps: np.ndarray, var: np.ndarray, mixture: bool, pairs: list[_Pair]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Lag-1 correlation per PCA mode, the roughness quantile table, and the variance-weighted correlation.

    Real outlines are not Gaussian in PCA space: most are smooth, a few are very irregular. Each object's
    RMS standardised coefficient ("roughness") is kept as a quantile table; the simulation scales a cell's
    Gaussian coefficients by a roughness drawn from it (a Gaussian scale mixture with the same covariance),
    which reproduces the solidity distribution. Smooth modes (size, elongation) persist, outline noise does
    not.
    """
    shape_pairs = [(a, b) for a, b in pairs if a.radii is not None and b.radii is not None]
    mode_rho = np.full(len(comps), 0.9)
    if len(comps) and mixture:
        rough_q = _roughness_q(x, mean, comps, var)
    else:
        rough_q = np.ones(N_QUANTILES)
    if len(comps) and len(shape_pairs) >= 5:
        za = np.stack([(a.radii - mean) @ comps.T / np.sqrt(var) for a, _ in shape_pairs])
        zb = np.stack([(b.radii - mean) @ comps.T / np.sqrt(var) for _, b in shape_pairs])
        den = np.sqrt(np.sum(za**2, axis=0) * np.sum(zb**2, axis=0))
        mode_rho = np.clip(np.sum(za * zb, axis=0) / np.maximum(den, 1e-12), 0, 0.999)
    rho_shape = float(np.sum(mode_rho * var) / np.sum(var)) if len(comps) else 0.9
    return mode_rho, rough_q, rho_shape


def _area_persistence(pairs: list[_Pair], track_pairs: list[_Pair]) -> tuple[list[_Pair], float, float]:
    """The pairs for lag-1 correlations, the lag-1 correlation of log area, and the area-change limit.

    Correlations come from whichever source has more whole-object pairs (sparse SEG often covers few
    cells); the area-change limit from whole-cell masks when there are enough (tracking markers, e.g.
    GOWT1's TRA, are not cells).
    """
    inner_pairs = [(a, b) for a, b in pairs if not a.touches_border and not b.touches_border]
    inner_track_pairs = [(a, b) for a, b in track_pairs if not a.touches_border and not b.touches_border]
    area_src = inner_pairs if len(inner_pairs) >= len(inner_track_pairs) else inner_track_pairs
    rho_area = _lag1(np.log([a.area for a, _ in area_src]), np.log([b.area for _, b in area_src]), 0.95)
    step_src = inner_pairs if len(inner_pairs) >= 8 else inner_track_pairs
    max_log_step = _max_log_step(np.log([b.area / a.area for a, b in step_src]))
    return area_src, rho_area, max_log_step


def _brightness(inner: list[ObjectRecord], area_src: list[_Pair]) -> tuple[np.ndarray, float, float]:
    """Brightness quantiles, lag-1 correlation and normal-score correlation with area.

    Larger cells may be dimmer (spread cells: MSC -0.4) or brighter. Without an image: a flat mid-grey
    in normalised units, stated in the summary.
    """
    bright = np.array([r.brightness for r in inner if r.brightness is not None])
    if not len(bright):
        return np.full(N_QUANTILES, 0.5), 0.95, 0.0
    rho_b = _lag1(np.array([a.brightness for a, _ in area_src]),
                  np.array([b.brightness for _, b in area_src]), 0.95)
    area_corr = _score_corr(np.array([r.area for r in inner if r.brightness is not None], dtype=np.float64),
                            bright)
    return quantiles(bright), rho_b, area_corr


def _step_series(track_pairs: list[_Pair]) -> tuple[list[float], list[float], list[float], list[float]]:
    """Step lengths, lengths of consecutive step pairs (earlier, later) and turning angles per track."""
    steps_by_track: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for a, b in track_pairs:
        steps_by_track[a.label].append((a.frame, np.subtract(b.centroid, a.centroid)))
    step_len, sl_a, sl_b, turns = [], [], [], []
    for seq in steps_by_track.values():
        for i, (f, v) in enumerate(seq):
            step_len.append(np.hypot(*v))
            if i > 0 and seq[i - 1][0] == f - 1:
                u = seq[i - 1][1]
                sl_a.append(np.hypot(*u))
                sl_b.append(np.hypot(*v))
                if np.hypot(*u) > 0.5 and np.hypot(*v) > 0.5:
                    turns.append(np.angle(np.exp(1j * (np.arctan2(v[1], v[0]) - np.arctan2(u[1], u[0])))))
    return step_len, sl_a, sl_b, turns


def _motion_params(track_pairs: list[_Pair]) -> dict[str, Any]:
    """Step, pause, turn and orientation-drift statistics of the tracks.

    Exactly-zero steps are hand-placed markers copied unchanged between frames (GOWT1: 17 %) or cells
    that pause; they are modelled as a pause probability (cell frozen for a frame), and the step sampler
    fits the moving steps.

    Raises
    ------
    InputError
        No object appears in two consecutive frames.
    """
    step_len, sl_a, sl_b, turns = _step_series(track_pairs)
    if not step_len:
        raise InputError("no object appears in two consecutive frames: motion cannot be measured")
    step_q = quantiles(step_len)
    step_arr = np.asarray(step_len, dtype=np.float64)
    moving = step_arr[step_arr >= PAUSE_EPS]
    pause_p = float(1.0 - len(moving) / len(step_arr)) if len(moving) else 0.0
    moving_q = quantiles(moving) if len(moving) >= 2 else step_q.copy()
    step_rho = _lag1(np.array(sl_a), np.array(sl_b), 0.5)
    turn_q = quantiles(turns) if len(turns) >= 5 else quantiles(np.linspace(-np.pi, np.pi, 101))
    drift = []
    for a, b in track_pairs:
        if a.eccentricity > 0.6 and b.eccentricity > 0.6:
            drift.append(np.angle(np.exp(2j * (b.orientation - a.orientation))) / 2)
    orient_drift = float(1.4826 * np.median(np.abs(drift))) if len(drift) >= 5 else float(np.radians(1.0))
    return {"step_quantiles": step_q, "moving_step_quantiles": moving_q, "pause_probability": pause_p,
            "sampler_step_quantiles": moving_q.copy(), "step_rho": step_rho,
            "turn_quantiles": turn_q,
            "orientation_drift": orient_drift}


def _first_and_last(track_recs: list[list[ObjectRecord]]) -> tuple[dict[int, ObjectRecord], dict[int, ObjectRecord]]:
    """The first and the last record of each track."""
    first: dict[int, ObjectRecord] = {}
    last: dict[int, ObjectRecord] = {}
    for recs in track_recs:
        for r in recs:
            first.setdefault(r.label, r)
            last[r.label] = r
    return first, last


def _lineage_sets(lineage: np.ndarray | None) -> tuple[set[int], set[int]]:
    """Track ids that are parents, and track ids that have a parent."""
    if lineage is not None and len(lineage):
        parents = {int(p) for p in lineage[:, 3] if p > 0}
        has_parent = {int(lab) for lab, _, _, p in lineage if p > 0}
    else:
        parents, has_parent = set(), set()
    return parents, has_parent


def _population_params(
    track_recs: list[list[ObjectRecord]], counts: np.ndarray, first: dict[int, ObjectRecord],
    last: dict[int, ObjectRecord], parents: set[int], has_parent: set[int], height: int, width: int,
) -> dict[str, Any]:
    """Cell counts, growth, spacing, the density over time, and entry and end rates.

    The density over time is the smoothed cell count (21 knots) per pixel, which the simulation follows.
    Entries are tracks that start after the first frame without a parent (per frame and border pixel);
    ends are tracks that stop before the last frame without dividing, away from the border (per cell
    frame).
    """
    n_frames = len(track_recs)
    tt = np.arange(n_frames)
    growth = float(np.polyfit(tt, np.log(np.maximum(counts, 1)), 1)[0]) if n_frames > 2 else 0.0
    nn = [d for recs in track_recs for d in _nearest_neighbour([r.centroid for r in recs])]
    nn_q = quantiles(nn) if nn else np.zeros(N_QUANTILES)
    win = max(1, n_frames // 10)
    smooth = np.convolve(np.pad(counts, win, mode="edge"), np.ones(2 * win + 1) / (2 * win + 1), mode="same")
    smooth = smooth[win:-win]
    knots = np.interp(np.linspace(0, n_frames - 1, 21), tt, smooth) / (height * width)
    eq_r = np.sqrt(np.median([r.area for recs in track_recs for r in recs]) / np.pi)
    entries = sum(1 for lab, r in first.items() if r.frame > 0 and lab not in has_parent)
    ends = 0
    for lab, r in last.items():
        if r.frame < n_frames - 1 and lab not in parents:
            cy, cx = r.centroid
            if min(cy, cx, height - 1 - cy, width - 1 - cx) > 1.5 * eq_r and not r.touches_border:
                ends += 1
    cell_frames = float(counts.sum())
    entry_rate = entries / max(n_frames - 1, 1) / (2.0 * (height + width))
    end_rate = ends / cell_frames
    return {"cells_first_frame": float(counts[0]), "cells_mean": float(counts.mean()),
            "density": float(counts.mean() / (height * width)), "growth": growth,
            "entry_rate": float(entry_rate), "end_rate": float(end_rate), "nn_quantiles": nn_q,
            "spacing": 1.0,
            "density_knots": knots}


def _division_params(
    config: FitConfig, track_recs: list[list[ObjectRecord]], lineage: np.ndarray | None,
    first: dict[int, ObjectRecord], last: dict[int, ObjectRecord], parents: set[int], cell_frames: float,
) -> tuple[dict[str, Any], np.ndarray]:
    """Division rate, daughter size and distance ratios, and the brightness factor per cell-cycle stage.

    Returns
    -------
    the ``division`` parameters, and the brightness ``stage_factor`` (6,): mothers' brightness over
    the last ``mitosis_frames`` (index 3) and daughters' over the first ``telophase_frames`` (index 5),
    relative to each track's mean
    """
    stage_factor = np.ones(6)
    n_div = len([p for p in parents if p in last])
    area_ratio, dist_ratio = [], []
    if n_div:
        kids: dict[int, list[int]] = defaultdict(list)
        for lab, _b, _e, p in lineage:
            if p > 0 and int(lab) in first:
                kids[int(p)].append(int(lab))
        area_ratio, dist_ratio = _daughter_geometry(kids, first, last)
        b_m, b_t, b_base = _division_brightness(config, track_recs, kids, first, last)
        if b_m and np.all(np.isfinite(b_m)) and np.median(b_base) > 0:
            stage_factor[3] = float(np.clip(np.median(b_m), 0.2, 5))
        if b_t and np.all(np.isfinite(b_t)) and np.median(b_base) > 0:
            stage_factor[5] = float(np.clip(np.median(b_t), 0.2, 5))
    division = {"enabled": bool(n_div > 0), "rate": float(n_div / cell_frames), "count": int(n_div),
                "area_ratio": float(np.median(area_ratio)) if area_ratio else 1.0,
                "distance_ratio": float(np.median(dist_ratio)) if dist_ratio else 1.0,
                "mitosis_frames": int(config.mitosis_frames),
                "telophase_frames": int(config.telophase_frames)}
    return division, stage_factor


def _daughter_geometry(
    kids: dict[int, list[int]], first: dict[int, ObjectRecord], last: dict[int, ObjectRecord]
) -> tuple[list[float], list[float]]:
    """Daughter / mother areas, and the gap between two daughters born together / the mother's diameter."""
    area_ratio, dist_ratio = [], []
    for p, ch in kids.items():
        m = last.get(p)
        if m is None:
            continue
        ds = [first[c] for c in ch]
        for d in ds:
            area_ratio.append(d.area / m.area)
        if len(ds) == 2 and ds[0].frame == ds[1].frame:
            gap = np.hypot(*np.subtract(ds[0].centroid, ds[1].centroid))
            dist_ratio.append(gap / (2 * np.sqrt(m.area / np.pi)))
    return area_ratio, dist_ratio


def _division_brightness(
    config: FitConfig, track_recs: list[list[ObjectRecord]], kids: dict[int, list[int]],
    first: dict[int, ObjectRecord], last: dict[int, ObjectRecord],
) -> tuple[list[float], list[float], list[float]]:
    """Relative brightness of mothers before and daughters after a division, and the mothers' means."""
    per_track_b: dict[int, dict[int, float]] = defaultdict(dict)
    for recs in track_recs:
        for r in recs:
            if r.brightness is not None:
                per_track_b[r.label][r.frame] = r.brightness
    b_m, b_t, b_base = [], [], []
    for p, ch in kids.items():
        m = last.get(p)
        if m is None:
            continue
        pb = per_track_b.get(p, {})
        if pb:
            mean_p = np.mean(list(pb.values()))
            b_base.append(mean_p)
            b_m.extend(pb[f] / mean_p for f in range(m.frame - config.mitosis_frames + 1, m.frame + 1) if f in pb)
        for c in ch:
            cb = per_track_b.get(c, {})
            if cb:
                mean_c = np.mean(list(cb.values()))
                f0 = first[c].frame
                b_t.extend(cb[f] / mean_c for f in range(f0, f0 + config.telophase_frames) if f in cb)
    return b_m, b_t, b_base


def _background_params(video: Video, norm: Normalisation | None, track_labels: Any, n_frames: int) -> dict[str, float]:
    """Background level and noise (normalised units) in up to 5 evenly spaced frames, away from the cells."""
    level, noise = 0.0, 0.0
    if video.image is not None and norm is not None:
        lv, nz = [], []
        for t in np.unique(np.linspace(0, n_frames - 1, min(5, n_frames)).round().astype(int)):
            img = norm.forward(np.asarray(video.image[t]))
            fg = ndi.binary_dilation(np.asarray(track_labels[t]) > 0, iterations=7)
            bg = ~fg
            if bg.sum() < 100:
                continue
            lv.append(np.median(img[bg]))
            res = (img - ndi.uniform_filter(img, 5))[bg]
            nz.append(1.4826 * np.median(np.abs(res - np.median(res))) * np.sqrt(25 / 24))
        if lv:
            level, noise = float(np.median(lv)), float(np.median(nz))
    return {"level": level, "noise": noise}
