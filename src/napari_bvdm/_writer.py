"""napari writer contribution: save an Image + Labels layer selection as a CTC dataset folder.

napari calls :func:`write_ctc` with the chosen folder path and the selected layers' data. The track
labels are the Labels layer marked ``TRA``/``RES``/``labels`` by our reader (or the first Labels layer
that is not ``SEG``); its lineage comes from the layer metadata when present, otherwise from
:func:`~napari_bvdm.io.lineage.lineage_from_labels` (tracks split at gaps). A Labels layer marked
``SEG`` is written to ``man_seg`` at its annotated frames; without one, every frame gets a
``man_seg`` copy of the track labels. The export is atomic and validated (see
:mod:`napari_bvdm.io.ctc_writer`).

No Qt or napari import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .io.ctc_writer import export_ctc
from .io.lineage import lineage_from_labels
from .io.validator import check_lineage
from .io.video import InputError

__all__ = ["write_ctc"]

LayerData = tuple[Any, dict[str, Any], str]


def _kind(meta: dict[str, Any]) -> str | None:
    return (meta.get("metadata") or {}).get("bvdm", {}).get("kind")


def _as_video(data, name: str):
    arr = data
    if getattr(arr, "ndim", 0) == 2:
        arr = np.asarray(arr)[None]
    if getattr(arr, "ndim", 0) != 3:
        raise InputError(f"layer {name!r} has shape {tuple(np.shape(arr))}; CTC export needs 2D "
                         "frames over time (T, Y, X) or one 2D image")
    return arr


def write_ctc(path: str, layer_data: list[LayerData], *, overwrite: bool = False) -> list[str]:
    """Write the given layers as CTC sequence ``01`` of the dataset folder ``path``.

    Parameters
    ----------
    path : str
        Dataset folder to create (must not exist unless ``overwrite``).
    layer_data : list of ``(data, meta, layer_type)``
        At most one ``image`` layer and one or more ``labels`` layers.

    Returns
    -------
    list of str
        ``[path]``.
    """
    images = [(d, m) for d, m, t in layer_data if t == "image"]
    labels = [(d, m) for d, m, t in layer_data if t == "labels"]
    if len(images) > 1:
        raise InputError(f"select one Image layer for a CTC export, not {len(images)}")
    if not labels:
        raise InputError("select a Labels layer (the track ids) for a CTC export")
    for _d, m in images:
        if m.get("rgb"):
            raise InputError(f"image layer {m.get('name')!r} is RGB; CTC raw frames are grey")
    track = next(((d, m) for d, m in labels if _kind(m) in ("TRA", "RES", "labels")), None)
    track = track or next(((d, m) for d, m in labels if _kind(m) != "SEG"), labels[0])
    seg = next(((d, m) for d, m in labels if _kind(m) == "SEG" and m is not track[1]), None)
    lab = _as_video(track[0], track[1].get("name", "labels"))
    image = _as_video(images[0][0], images[0][1].get("name", "image")) if images else None
    if image is not None and tuple(image.shape) != tuple(lab.shape):
        raise InputError(f"image layer {images[0][1].get('name')!r} {tuple(image.shape)} and labels "
                         f"layer {track[1].get('name')!r} {tuple(lab.shape)} differ in shape")
    lineage = (track[1].get("metadata") or {}).get("bvdm", {}).get("lineage")
    if lineage is not None:
        from .io.lineage import frame_label_sets

        per = frame_label_sets(lab[t] for t in range(len(lab)))
        if check_lineage(np.asarray(lineage), per, len(lab)):
            lineage = None  # edited since it was read: derive a fresh, valid lineage
    if lineage is None:
        lab, lineage = lineage_from_labels(lab)
    seg_arg: Any = "all"
    seg_frames = None
    if seg is not None:
        seg_arg = _as_video(seg[0], seg[1].get("name", "SEG"))
        seg_frames = (seg[1].get("metadata") or {}).get("bvdm", {}).get("frames")
        if seg_frames is None:
            seg_frames = [t for t in range(len(seg_arg)) if np.asarray(seg_arg[t]).any()]
    out = export_ctc(Path(path), image, lab, np.asarray(lineage), seg=seg_arg, seg_frames=seg_frames,
                     overwrite=overwrite)
    return [str(out)]
