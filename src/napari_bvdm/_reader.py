"""napari reader contribution: TIFF videos, frame folders and CTC sequences.

``get_reader(path)`` returns a function producing layer data: one Image layer, one Labels layer per
annotation kind (TRA, SEG placed at its frames, ST, ERR_SEG, RES) and a Tracks layer built from the
TRA masks and the lineage (``graph = {daughter: [mother]}``). Arrays are lazy (frames are decoded
when napari shows them), dtypes are kept, contrast limits come from robust percentiles.

No Qt or napari import: layer data are plain tuples ``(data, kwargs, layer_type)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .io.readers import TIFF_SUFFIXES, find_ctc, read_video
from .io.video import InputError, Video

__all__ = ["get_reader", "read_layers", "video_to_layers", "contrast_limits"]

LayerData = tuple[Any, dict[str, Any], str]


def get_reader(path: str | list[str]):
    """The napari reader hook: a reader function for paths we understand, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.is_file():
        return read_layers if p.suffix.lower() in TIFF_SUFFIXES else None
    if p.is_dir():
        try:
            if find_ctc(p) is not None:
                return read_layers
        except InputError:
            return read_layers  # let the reader report the problem
        if any(c.is_file() and c.suffix.lower() in TIFF_SUFFIXES for c in p.iterdir()):
            return read_layers
    return None


def read_layers(path: str | list[str]) -> list[LayerData]:
    """Read ``path`` lazily and return napari layer data."""
    if isinstance(path, (list, tuple)):
        path = path[0]
    lay = find_ctc(path) if Path(path).is_dir() else None
    if lay is not None and lay.other_sequences:  # a dataset folder: every sequence, layers named by sequence
        out: list[LayerData] = []
        for seq in [lay.sequence, *lay.other_sequences]:
            out += video_to_layers(read_video(path, lazy=True, sequence=seq, check=False))
        return out
    video = read_video(path, lazy=True, check=False)
    return video_to_layers(video)


def contrast_limits(image, n_samples: int = 5) -> tuple[float, float]:
    """Robust display range: 0.1 / 99.9 percentiles of up to ``n_samples`` evenly spaced frames."""
    n = len(image)
    idx = np.unique(np.linspace(0, n - 1, min(n, n_samples)).round().astype(int))
    sample = np.stack([np.asarray(image[int(t)]) for t in idx])
    if sample.dtype == np.bool_:
        return 0.0, 1.0
    finite = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample.ravel()
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [0.1, 99.9]).astype(float)
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def _name(video: Video) -> str:
    src = Path(video.source) if video.source else None
    if src is None:
        return "video"
    if video.meta.get("format") == "ctc":
        return f"{Path(video.meta['dataset']).name} {video.meta['sequence']}"
    return src.stem if src.is_file() else src.name


def video_to_layers(video: Video) -> list[LayerData]:
    """Layer data for a :class:`Video`: image, labels per kind, tracks (TRA + lineage).

    Raises
    ------
    InputError
        The lineage disagrees with the TRA masks (checked in the same pass that finds the
        track positions).
    """
    base = _name(video)
    layers: list[LayerData] = []
    common: dict[str, Any] = {"source": video.source, "format": video.meta.get("format")}
    px = video.meta.get("pixel_size")
    scale = {"scale": (1.0, float(px), float(px)), "units": ("pixel", "micrometer", "micrometer")} if px else {}
    for key in ("pixel_size", "frame_interval"):
        if video.meta.get(key):
            common[key] = float(video.meta[key])
    if video.image is not None:
        layers.append((video.image, {
            "name": base,
            "contrast_limits": contrast_limits(video.image),
            **scale,
            "metadata": {"bvdm": {**common, "kind": "image", "axes": str(video.meta.get("axes", ""))}},
        }, "image"))
    for kind, arr in video.labels.items():
        meta: dict[str, Any] = {**common, "kind": kind}
        name = f"{base} {kind}"
        if kind == "SEG":
            meta["frames"] = list(video.seg_frames)
            if len(video.seg_frames) < video.n_frames:
                name += f" ({len(video.seg_frames)} frames)"
        elif kind == "ST" and "st_frames" in video.meta:
            meta["frames"] = list(video.meta["st_frames"])
        if kind == "TRA" and video.lineage is not None:
            meta["lineage"] = np.asarray(video.lineage)
        if kind == "RES" and "res_lineage" in video.meta:
            meta["lineage"] = np.asarray(video.meta["res_lineage"])
        layers.append((arr, {"name": name, "opacity": 0.5, "metadata": {"bvdm": meta}, **scale}, "labels"))
    for kind in ("TRA", "RES"):
        lineage = video.lineage if kind == "TRA" else video.meta.get("res_lineage")
        if kind in video.labels and lineage is not None:
            data, graph = _tracks(video.labels[kind], lineage, f"{base} {kind}")
            if len(data):
                layers.append((data, {
                    "name": f"{base} tracks" + (" (RES)" if kind == "RES" else ""),
                    "graph": graph,
                    "tail_length": 10,
                    **scale,
                    "metadata": {"bvdm": {**common, "kind": f"{kind} tracks",
                                          "lineage": np.asarray(lineage)}},
                }, "tracks"))
    return layers


def _tracks(labels, lineage: np.ndarray, where: str) -> tuple[np.ndarray, dict]:
    """One pass over the label video: CTC rules 1-8 and per-frame centroids for napari Tracks."""
    from .io.lineage import _graph_for, label_centroids
    from .io.validator import check_lineage

    data, per_frame = label_centroids(labels)
    problems = check_lineage(lineage, per_frame, len(labels))
    if problems:
        shown = "; ".join(str(v) for v in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InputError(f"{where}: the track file disagrees with the label images: {shown}{more}")
    return data, _graph_for(data, lineage)
