"""Training data for the texture model: per-cell crops with masks, brightness and track ids.

Each cell of each annotated frame is centred (bounding-box centre) in a ``crop_size`` square. Pixels of
the cell (its mask dilated by ``margin`` px, other cells excluded) keep their normalised intensity,
everything else is 0 (the camera floor), as in the reference. Cells cut by the image border or larger
than the crop are left out and counted. The held-out split is by track, never by frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..io.video import InputError
from .normalisation import Normalisation

MIN_CELLS = 32
"""Fewest usable cell crops (over at least 2 tracks) the training accepts."""


@dataclass
class CellCrops:
    """Per-cell crops in normalised units.

    Attributes
    ----------
    images : (N, h, w) float32 normalised intensity, 0 outside the cell.
    masks : (N, h, w) bool cell masks.
    brightness : (N,) float32 mean normalised intensity inside the mask.
    track : (N,) int64 track id (the held-out split groups by it).
    frame : (N,) int64 source frame.
    normalisation : the :class:`Normalisation` used.
    skipped : counts of cells left out, by reason.
    """

    images: np.ndarray
    masks: np.ndarray
    brightness: np.ndarray
    track: np.ndarray
    frame: np.ndarray
    normalisation: Normalisation
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def crop_size(self) -> int:
        return int(self.images.shape[-1])

    def subset(self, idx: np.ndarray) -> CellCrops:
        return CellCrops(self.images[idx], self.masks[idx], self.brightness[idx], self.track[idx],
                         self.frame[idx], self.normalisation, dict(self.skipped))

    def split_by_track(self, val_fraction: float = 0.15, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``(train, val)``; whole tracks go to validation (at least one when there are 2+)."""
        tracks = np.unique(self.track)
        rng = np.random.default_rng(seed)
        tracks = rng.permutation(tracks)
        n_val = int(round(val_fraction * len(tracks)))
        if val_fraction > 0 and len(tracks) >= 2:
            n_val = min(max(n_val, 1), len(tracks) - 1)
        val_tracks = set(tracks[:n_val].tolist())
        is_val = np.array([t in val_tracks for t in self.track.tolist()], dtype=bool)
        return np.flatnonzero(~is_val), np.flatnonzero(is_val)

    def fingerprint(self) -> dict[str, Any]:
        """Small summary to recognise the same data on resume."""
        return {"n": len(self), "crop_size": self.crop_size, "n_tracks": int(len(np.unique(self.track))),
                "normalisation": self.normalisation.to_dict()}


def _track_of(obj_mask: np.ndarray, tra: np.ndarray | None, fallback: int) -> int:
    if tra is None:
        return fallback
    ids = tra[obj_mask]
    ids = ids[ids > 0]
    if ids.size == 0:
        return -fallback  # not tracked: its own group
    return int(np.bincount(ids).argmax())


def extract_crops(
    image: Any,
    labels: Any,
    *,
    tracks: Any | None = None,
    frames: list[int] | None = None,
    crop_size: int = 96,
    margin: int = 2,
    min_area: int = 30,
    normalisation: Normalisation | None = None,
) -> CellCrops:
    """Cut one crop per cell and frame.

    Parameters
    ----------
    image : (T, Y, X) raw frames.
    labels : (T, Y, X) full instance masks (SEG/ST/Labels layer); frames without any label are skipped.
    tracks : optional (T, Y, X) track-id labels (CTC TRA) used to give each object its track; without
        it the label value itself is the track id (a tracked Labels layer).
    frames : frames to use (default: all with labels).
    crop_size : square crop side; cells whose bounding box does not fit (with ``margin``) are skipped.
    margin : pixels of real surroundings kept around each mask.
    min_area : smaller objects are skipped (debris, fragments).
    normalisation : estimated from the annotated frames when None.

    Raises
    ------
    InputError
        Missing image, shape mismatch, NaNs or a constant image.
    """
    _check_inputs(image, labels, tracks)
    if frames is None:
        frames = [t for t in range(labels.shape[0]) if np.asarray(labels[t]).any()]
    if not frames:
        raise InputError("the label video is empty: no frame holds any cell")
    img_f = np.stack([np.asarray(image[t]) for t in frames])
    lab_f = np.stack([np.asarray(labels[t]) for t in frames]).astype(np.int64)
    if normalisation is None:
        normalisation = Normalisation.estimate(img_f, lab_f, max_frames=len(frames))
    elif not np.isfinite(img_f.astype(np.float32)).all():
        raise InputError("the image holds NaN or infinite values; clean or replace them first")
    cells: list[tuple[np.ndarray, np.ndarray, float, int, int]] = []
    skipped = {"border": 0, "too_large": 0, "too_small": 0}
    for k, t in enumerate(frames):
        norm = normalisation.forward(img_f[k])
        tra = np.asarray(tracks[t]).astype(np.int64) if tracks is not None else None
        for crop in _frame_crops(lab_f[k], norm, tra, crop_size=crop_size, margin=margin, min_area=min_area,
                                 skipped=skipped):
            cells.append((*crop, t))
    if not cells:
        raise InputError(f"no usable cell in the annotated frames (left out: {skipped})")
    ims, mks, br, tr, fr = zip(*cells, strict=True)
    return CellCrops(np.stack(ims), np.stack(mks), np.asarray(br, np.float32), np.asarray(tr, np.int64),
                     np.asarray(fr, np.int64), normalisation, skipped)


def _check_inputs(image: Any, labels: Any, tracks: Any | None) -> None:
    """Raise :class:`InputError` unless image, labels and tracks are (T, Y, X) videos of one shape."""
    if image is None:
        raise InputError("labels were given without an image: the texture model needs the raw frames too")
    if labels is None:
        raise InputError("no label video: the texture model needs full cell masks (SEG/ST or a Labels layer)")
    if tuple(image.shape) != tuple(labels.shape):
        raise InputError(f"image shape {tuple(image.shape)} and labels shape {tuple(labels.shape)} differ")
    if image.ndim != 3:
        raise InputError(f"expected a (T, Y, X) video, got shape {tuple(image.shape)}")
    if tracks is not None and tuple(tracks.shape) != tuple(image.shape):
        raise InputError(f"track labels shape {tuple(tracks.shape)} differs from image {tuple(image.shape)}")


def _frame_crops(
    lab: np.ndarray, norm: np.ndarray, tra: np.ndarray | None, *, crop_size: int, margin: int, min_area: int,
    skipped: dict[str, int],
) -> list[tuple[np.ndarray, np.ndarray, float, int]]:
    """``(image, mask, brightness, track)`` of each usable cell of one frame; counts the others in ``skipped``."""
    disk = ndi.generate_binary_structure(2, 1)
    out = []
    for lid, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        obj = lab[sl] == lid
        reason = _skip_reason(int(obj.sum()), sl, lab.shape, crop_size, margin, min_area)
        if reason is not None:
            skipped[reason] += 1
            continue
        image, mask, brightness = _cut_crop(lab, norm, lid, sl, crop_size, margin, disk)
        track = _track_of(obj, tra[sl], lid) if tra is not None else lid
        out.append((image, mask, brightness, track))
    return out


def _skip_reason(
    area: int, sl: tuple[slice, slice], shape: tuple[int, int], crop_size: int, margin: int, min_area: int,
) -> str | None:
    """Why a cell with bounding box ``sl`` is left out (a key of ``CellCrops.skipped``), or None."""
    if area < min_area:
        return "too_small"
    y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
    if y0 == 0 or x0 == 0 or y1 == shape[0] or x1 == shape[1]:
        return "border"
    if (y1 - y0) + 2 * margin > crop_size or (x1 - x0) + 2 * margin > crop_size:
        return "too_large"
    return None


def _cut_crop(
    lab: np.ndarray, norm: np.ndarray, lid: int, sl: tuple[slice, slice], h: int, margin: int,
    disk: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Crop of cell ``lid`` centred on its bounding box: masked image, mask and mean brightness."""
    H, W = lab.shape
    cy, cx = (sl[0].start + sl[0].stop) // 2, (sl[1].start + sl[1].stop) // 2
    wy0, wx0 = cy - h // 2, cx - h // 2
    # window may leave the image: copy the overlap into a zero canvas
    sy0, sx0 = max(wy0, 0), max(wx0, 0)
    sy1, sx1 = min(wy0 + h, H), min(wx0 + h, W)
    crop_lab = np.zeros((h, h), np.int64)
    crop_img = np.zeros((h, h), np.float32)
    crop_lab[sy0 - wy0:sy1 - wy0, sx0 - wx0:sx1 - wx0] = lab[sy0:sy1, sx0:sx1]
    crop_img[sy0 - wy0:sy1 - wy0, sx0 - wx0:sx1 - wx0] = norm[sy0:sy1, sx0:sx1]
    mask = crop_lab == lid
    keep = ndi.binary_dilation(mask, disk, iterations=margin) if margin > 0 else mask
    keep &= (crop_lab == 0) | mask
    return np.where(keep, crop_img, 0.0).astype(np.float32), mask, float(crop_img[mask].mean())


def check_enough(crops: CellCrops, min_cells: int = MIN_CELLS) -> None:
    """Raise :class:`InputError` when there is too little to train on."""
    n_tr = len(np.unique(crops.track))
    if len(crops) < min_cells or n_tr < 2:
        raise InputError(
            f"only {len(crops)} usable cell crops in {n_tr} track(s) (left out: {crops.skipped}); the texture "
            f"model needs at least {min_cells} crops from at least 2 tracks (more annotated frames, or a smaller "
            "crop size if cells were too large)"
        )


def load_ctc_crops(path: str | Path, sequence: str | None = None, *, crop_size: int = 96, **kw: Any) -> CellCrops:
    """Crops from a CTC sequence folder (``.../01`` or the dataset folder plus ``sequence``).

    Full masks come from ``<seq>_GT/SEG`` (or ``<seq>_ST/SEG``, ``<seq>_ERR_SEG``); track ids from
    ``<seq>_GT/TRA`` when present.
    """
    video = read_training_video(path, sequence)
    key = "ST" if "ST" in video.labels else "SEG" if "SEG" in video.labels else "ERR_SEG" if "ERR_SEG" in \
        video.labels else "labels" if "labels" in video.labels else None
    if key is None:
        raise InputError(f"{path}: no full-mask annotation (SEG, ST, ERR_SEG) found; TRA markers are too small")
    frames = list(video.seg_frames) if key == "SEG" and video.seg_frames else None
    return extract_crops(video.image, video.labels[key], tracks=video.labels.get("TRA"), frames=frames,
                         crop_size=crop_size, **kw)


def read_training_video(path: str | Path, sequence: str | None = None):
    """Read a CTC sequence through :func:`napari_bvdm.io.readers.read_video` when available."""
    p = Path(path)
    if sequence is not None:
        p = p / sequence
    try:
        from ..io.readers import read_video  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - until the I/O stage lands
        return _read_ctc_fallback(p)
    return read_video(p, lazy=True, check=False)


def _read_ctc_fallback(seq: Path):
    import tifffile

    from ..io.video import Video

    if not seq.is_dir():
        raise InputError(f"{seq} is not a CTC sequence folder (expected e.g. .../Fluo-N2DH-GOWT1/01)")
    files = sorted(seq.glob("t*.tif"))
    if not files:
        raise InputError(f"{seq}: no tTTT.tif frames")
    image = np.stack([tifffile.imread(f) for f in files])
    T = image.shape[0]
    labels: dict[str, np.ndarray] = {}
    seg_frames: list[int] = []
    for kind, folder, prefix in (("SEG", f"{seq.name}_GT/SEG", "man_seg"), ("TRA", f"{seq.name}_GT/TRA", "man_track"),
                                 ("ST", f"{seq.name}_ST/SEG", "man_seg"), ("ERR_SEG", f"{seq.name}_ERR_SEG", "mask")):
        d = seq.parent / folder
        fs = sorted(d.glob(f"{prefix}*.tif")) if d.is_dir() else []
        if not fs:
            continue
        arr = np.zeros(image.shape, np.uint16)
        for f in fs:
            t = int(f.stem[len(prefix):])
            if t < T:
                arr[t] = tifffile.imread(f)
                if kind == "SEG":
                    seg_frames.append(t)
        labels[kind] = arr
    return Video(image=image, labels=labels, seg_frames=sorted(seg_frames), source=str(seq))
