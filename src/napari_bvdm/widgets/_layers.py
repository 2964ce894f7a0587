"""Qt-free helpers between napari layers and core data: summaries, tracks, classical segmentation.

Nothing here imports Qt or napari; the jobs are generators like every core job, so the GUI runs
them off the GUI thread with :class:`~napari_bvdm.widgets._jobs.JobRunner`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..io.linking import check_linked
from ..runtime.compat import remove_small_objects
from ..runtime.progress import CancelToken, Job, Progress

__all__ = [
    "texture_preview",
    "figure_to_rgb",
    "lineage_from_metadata",
    "layer_info",
    "summarise_video",
    "grey_image",
    "tracks_layer_data",
    "classical_segmentation",
]


def lineage_from_metadata(metadata: dict | None) -> np.ndarray | None:
    """A CTC lineage table ``(N, 4)`` ``L B E P`` from a layer's metadata, if the reader put one."""
    if not metadata:
        return None
    if isinstance(metadata.get("bvdm"), dict):  # layers from napari-bvdm's reader
        found = lineage_from_metadata(metadata["bvdm"])
        if found is not None:
            return found
    for key in ("lineage", "ctc_lineage", "man_track", "tracks"):
        v = metadata.get(key)
        if v is None:
            continue
        arr = np.asarray(v, dtype=np.int64)
        if arr.ndim == 2 and arr.shape[1] == 4:
            return arr
    video = metadata.get("video")
    lin = getattr(video, "lineage", None)
    return None if lin is None else np.asarray(lin, dtype=np.int64)


def layer_info(metadata: dict | None) -> dict:
    """napari-bvdm facts about a layer (``kind``, ``source``, ``frames``), wherever the metadata holds them."""
    md = dict(metadata or {})
    info = dict(md.get("bvdm") or {}) if isinstance(md.get("bvdm"), dict) else {}
    for key in ("kind", "source", "frames"):
        if key not in info and key in md:
            info[key] = md[key]
    return info


def summarise_video(
    image: Any | None,
    labels: Any | None,
    lineage: np.ndarray | None = None,
    token: CancelToken | None = None,
    first_axis: str = "time",
) -> Job[dict[str, Any]]:
    """Frames, size, cells per frame, tracks and divisions of an image/label video.

    Refuses (:class:`~napari_bvdm.io.video.InputError`, with the reason) a z-stack (``first_axis="z"``),
    more than three dimensions, image and labels of different sizes, NaN or infinite pixel values and
    labels without a single cell.

    Returns a dict with ``frames``, ``size`` (Y, X), ``dtype``, ``cells_per_frame``
    (min, mean, max) and ``tracks``, ``divisions``, ``labels_linked`` when labels are given.
    """
    from ..io.video import InputError

    ref = image if image is not None else labels
    if ref is None:
        raise InputError("nothing to summarise: pick an image layer (and a labels layer)")
    shape = tuple(int(s) for s in ref.shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise InputError(f"the image has {len(shape)} dimensions (shape {shape}); napari-bvdm needs a 2D "
                         "time-lapse (time, height, width) in one grey channel")
    if first_axis == "z":
        raise InputError(f"this is a z-stack of {shape[0]} slices: napari-bvdm makes 2D time-lapse videos and "
                         "does not handle 3D stacks yet; open a time-lapse, or a projection of each time point")
    out: dict[str, Any] = {"frames": shape[0], "size": shape[1:]}
    if image is not None:
        out["dtype"] = np.dtype(image.dtype).name
        if labels is not None and _as_video_shape(labels.shape) != _as_video_shape(image.shape):
            raise InputError(
                f"the image is {_dims(image.shape)} but the labels are {_dims(labels.shape)}: pick the labels "
                "of the same video"
            )
        yield from _check_finite(image if image.ndim == 3 else image[None], token)
    if labels is None:
        return out
    lab = labels if labels.ndim == 3 else labels[None]
    t = lab.shape[0]
    counts = []
    ids_per_frame: list[np.ndarray] = []
    for i in range(t):
        if token is not None:
            token.check()
        ids = np.unique(np.asarray(lab[i]))
        ids = ids[ids != 0]
        ids_per_frame.append(ids)
        counts.append(len(ids))
        yield Progress(i + 1, t, f"counting cells, frame {i + 1}", stage="summary")
    all_ids = np.unique(np.concatenate(ids_per_frame)) if ids_per_frame else np.zeros(0)
    if not len(all_ids):
        raise InputError(f"the labels are empty: no cell in any of the {t} frames; pick the labels of this video "
                         "or segment it (below)")
    c = np.asarray(counts, dtype=float)
    out["cells_per_frame"] = (int(c.min()), float(c.mean()), int(c.max())) if len(c) else (0, 0.0, 0)
    out["tracks"] = int(len(all_ids))
    # labels are "linked" when ids stay on their cells over frames (a tracking), not renumbered per frame
    out["labels_linked"] = lineage is not None or check_linked(lab).linked
    if lineage is not None and len(lineage):
        lin = np.asarray(lineage)
        out["tracks"] = int(len(lin))
        out["divisions"] = int(len(np.unique(lin[lin[:, 3] > 0, 3])))
    else:
        out["divisions"] = None  # unknown without a lineage
    return out


def _as_video_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(int(n) for n in shape)
    return (1, *shape) if len(shape) == 2 else shape


def _dims(shape: tuple[int, ...]) -> str:
    shape = tuple(int(n) for n in shape)
    if len(shape) == 3:
        return f"{shape[0]} frames of {shape[1]} x {shape[2]} px"
    return " x ".join(map(str, shape)) + " px"


def _check_finite(image: Any, token: CancelToken | None) -> Job[None]:
    """Refuse NaN or infinite pixel values, with their count and the first frame holding one."""
    from ..io.video import InputError

    if np.dtype(image.dtype).kind not in "fc":
        return
    bad, first = 0, None
    t = image.shape[0]
    for i in range(t):
        if token is not None:
            token.check()
        n = int(np.count_nonzero(~np.isfinite(np.asarray(image[i]))))
        if n and first is None:
            first = i
        bad += n
        yield Progress(i + 1, t, f"checking pixel values, frame {i + 1}", stage="values")
    if bad:
        raise InputError(f"the image holds {bad} pixels that are not numbers (NaN or infinite), the first in frame "
                         f"{first + 1}: replace them (e.g. by 0, in Fiji: Process > Math > Remove NaNs) and open it "
                         "again")


def grey_image(data: Any, rgb: bool) -> tuple[Any, str | None]:
    """A colour image (``rgb`` layer, last axis 3 or 4) as grey: the mean of R, G and B, with a notice."""
    shape = tuple(np.shape(data))
    if not rgb or not shape or shape[-1] not in (3, 4):
        return data, None
    arr = np.asarray(data)[..., :3]
    same = bool(np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]))
    grey = arr[..., 0] if same else arr.astype(np.float32).mean(axis=-1)
    note = "the colour image was converted to grey" + (" (its three channels are equal)" if same else
                                                       " (the mean of red, green and blue)")
    return grey, note


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable lines for the Data step."""
    lines = [f"{summary['frames']} frames of {summary['size'][0]} x {summary['size'][1]} px"
             + (f" ({summary['dtype']})" if "dtype" in summary else "")]
    if "cells_per_frame" in summary:
        lo, mean, hi = summary["cells_per_frame"]
        lines.append(f"cells per frame: {lo} to {hi} (mean {mean:.1f})")
        if summary.get("labels_linked", True):
            lines.append(f"tracks: {summary['tracks']}")
        else:
            lines.append("tracks: none yet: the labels are numbered frame by frame (the same number moves between "
                         "cells); Fit shape model links them into tracks by nearest position")
        div = summary.get("divisions")
        lines.append("divisions: " + ("unknown (no lineage)" if div is None else str(div)))
    else:
        lines.append("no labels: the shape and flow models need a label video")
    lines.extend(f"note: {n}" for n in summary.get("notices", ()))
    return "\n".join(lines)


def tracks_layer_data(labels: np.ndarray, lineage: np.ndarray | None = None
                      ) -> tuple[np.ndarray, dict[int, list[int]]]:
    """napari Tracks data ``(N, 4)`` rows ``[track_id, t, y, x]`` and the division graph.

    Centroids per label per frame; ``graph`` maps each daughter to ``[mother]`` from the lineage.
    """
    from scipy import ndimage

    rows = []
    lab = np.asarray(labels)
    for t in range(lab.shape[0]):
        frame = lab[t]
        ids = np.unique(frame)
        ids = ids[ids != 0]
        if not len(ids):
            continue
        cents = ndimage.center_of_mass(np.ones_like(frame, dtype=np.uint8), frame, ids)
        for i, (y, x) in zip(ids, cents, strict=True):
            rows.append((int(i), t, float(y), float(x)))
    data = np.asarray(rows, dtype=float).reshape(-1, 4)
    graph: dict[int, list[int]] = {}
    present = set(np.unique(data[:, 0]).astype(int)) if len(data) else set()
    if lineage is not None:
        for lab_id, _b, _e, parent in np.asarray(lineage).reshape(-1, 4):
            if parent > 0 and int(lab_id) in present and int(parent) in present:
                graph[int(lab_id)] = [int(parent)]
    return data, graph


def classical_segmentation(
    image: Any,
    *,
    sigma: float = 2.0,
    threshold: float | None = None,
    method: str = "triangle",
    min_size: int = 50,
    min_distance: int = 7,
    token: CancelToken | None = None,
) -> Job[np.ndarray]:
    """Threshold + watershed instance segmentation of every frame (a starting point, not a tracker).

    Parameters
    ----------
    image : (T, Y, X) array
    sigma : Gaussian smoothing before thresholding, in pixels.
    threshold : intensity threshold on the smoothed image; ``None`` = automatic per frame (``method``).
    method : automatic threshold: ``"triangle"`` (default; suits a dark background with bright nuclei,
        finds 96 % of GOWT1's nuclei where Otsu misses the dim half), ``"otsu"`` or ``"li"``.
    min_size : objects smaller than this many pixels are removed.
    min_distance : minimum distance between watershed seeds (about a nucleus radius / 2).

    Returns
    -------
    (T, Y, X) uint16 labels, numbered per frame (not linked over time).
    """
    from scipy import ndimage
    from skimage import filters
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    auto = {"triangle": filters.threshold_triangle, "otsu": filters.threshold_otsu, "li": filters.threshold_li}
    if method not in auto:
        raise ValueError(f"threshold method {method!r}: use one of {sorted(auto)}")

    img = image if image.ndim == 3 else image[None]
    t = img.shape[0]
    out = np.zeros(img.shape, dtype=np.uint16)
    for i in range(t):
        if token is not None:
            token.check()
        f = filters.gaussian(np.asarray(img[i], dtype=np.float32), sigma=sigma, preserve_range=True)
        thr = threshold if threshold is not None else (auto[method](f) if f.max() > f.min() else np.inf)
        fg = remove_small_objects(f > thr, min_size)
        if fg.any():
            dist = ndimage.distance_transform_edt(fg)
            peaks = peak_local_max(dist, min_distance=min_distance, labels=ndimage.label(fg)[0],
                                   exclude_border=False)
            markers = np.zeros(fg.shape, dtype=np.int32)
            markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
            seg = watershed(-dist, markers, mask=fg)
            seg = remove_small_objects(seg, min_size)
            out[i] = seg.astype(np.uint16)
        yield Progress(i + 1, t, f"segmenting frame {i + 1}/{t}", stage="segment")
    return out


def texture_preview(model: Any, image: Any, labels: Any, tracks: Any = None, *, n: int = 8, sampler: str = "dpm",
                    ddim_steps: int = 10, tf0: int = 200, seed: int = 0, device: str | None = None,
                    token: CancelToken | None = None) -> Job[np.ndarray]:
    """Paint ``n`` real cell masks with the texture model: returns a (2 h, n w) mosaic, real crops on
    top, painted ones below (normalised units), for a side-by-side look in napari."""
    from ..synthesis.config import GenerateConfig
    from ..synthesis.recipe import build_painter
    from ..texture.crops import extract_crops

    yield Progress(0, 2, "cutting real cell crops", stage="preview")
    crops = extract_crops(image, labels, tracks=tracks, crop_size=model.crop_size, normalisation=model.normalisation)
    if len(crops) == 0:
        raise ValueError("no whole cell fits a crop of the model's size in this video")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(crops), size=min(n, len(crops)), replace=False))
    if token is not None:
        token.check()
    yield Progress(1, 2, f"painting {len(idx)} masks", stage="preview")
    cfg = GenerateConfig().with_updates({"texture.sampler": sampler, "texture.passes": ddim_steps,
                                         "texture.first_strength": min(tf0, model.config.T), "device": device})
    painter, _ = build_painter(cfg, model)  # the recipe's painter, as Generate uses it
    painted = painter.paint(crops.masks[idx], crops.brightness[idx], generator=seed)
    real = crops.images[idx]
    yield Progress(2, 2, "done", stage="preview")
    return np.concatenate([np.concatenate(list(real), axis=1), np.concatenate(list(painted), axis=1)], axis=0)


def figure_to_rgb(fig: Any) -> np.ndarray:
    """Render a matplotlib figure (off-screen, Agg) to an (H, W, 3) uint8 array for an image layer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
