"""Data for the train-on-synthetic / test-on-real evaluation.

Reads CTC sequences, picks training frames (image + full instance masks), cuts the real test window
(temporal split) and writes its ground truth as a small, valid CTC ``NN_GT`` folder at the reduced
evaluation scale (block-mean downsampling of images, centre sampling of labels, optional centre crop).
Cropping or downsampling can make a marker vanish for a frame; such tracks are split and relinked
(new label, parent = old label) so that the cut ground truth still satisfies the CTC validity rules.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.video import InputError, Video

__all__ = [
    "Pair",
    "load_sequence",
    "find_sequences",
    "downsample_image",
    "downsample_labels",
    "centre_crop",
    "training_pairs",
    "split_frames",
    "relabel_tracks",
    "write_ctc_labels",
    "write_gt_window",
    "window_images",
]


@dataclass
class Pair:
    """One training frame: raw image (H, W), full instance masks (H, W) and an optional ignore mask.

    ``ignore`` (bool, H, W) marks pixels whose class is unknown: around cells that carry a tracking
    marker but no segmentation (partially annotated SEG frames); the loss skips them.
    """

    image: np.ndarray
    instances: np.ndarray
    source: str = ""
    ignore: np.ndarray | None = None


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
def load_sequence(path: str | Path) -> Video:
    """Read a CTC sequence folder (``DS/01`` with ``DS/01_GT``) lazily with the project's reader.

    The lineage check is skipped here: the test window is relabelled by :func:`relabel_tracks`.
    """
    from ..io.readers import read_video

    return read_video(path, lazy=True, check=False)


def find_sequences(path: str | Path) -> list[Path]:
    """CTC sequence folders at ``path``: the folder itself if it holds ``t*.tif``, else its ``NN`` folders."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path} does not exist or is not a folder")
    if any(path.glob("t*.tif")):
        return [path]
    seqs = sorted(p for p in path.iterdir() if p.is_dir() and re.fullmatch(r"\d{2,}", p.name) and any(p.glob("t*.tif")))
    if not seqs:
        raise InputError(
            f"{path} holds neither tTTT.tif frames nor CTC sequence folders (01, 02, ...) with frames"
        )
    return seqs


# --------------------------------------------------------------------------------------------
# scale
# --------------------------------------------------------------------------------------------
def downsample_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Block-mean downsampling of the last two axes by an integer factor (float32)."""
    image = np.asarray(image, dtype=np.float32)
    if factor == 1:
        return image
    h, w = image.shape[-2] // factor * factor, image.shape[-1] // factor * factor
    x = image[..., :h, :w]
    shape = x.shape[:-2] + (h // factor, factor, w // factor, factor)
    return x.reshape(shape).mean(axis=(-3, -1))


def downsample_labels(labels: np.ndarray, factor: int) -> np.ndarray:
    """Nearest (block-centre) downsampling of label images; matches :func:`downsample_image`'s grid."""
    labels = np.asarray(labels)
    if factor == 1:
        return labels
    h, w = labels.shape[-2] // factor * factor, labels.shape[-1] // factor * factor
    c = factor // 2
    return labels[..., c:h:factor, c:w:factor]


def centre_crop(arr: np.ndarray, size: Sequence[int] | None) -> np.ndarray:
    """Centre crop of the last two axes to ``size = (h, w)`` (no-op where already smaller)."""
    if size is None:
        return arr
    h, w = arr.shape[-2:]
    ch, cw = min(int(size[0]), h), min(int(size[1]), w)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return arr[..., y0 : y0 + ch, x0 : x0 + cw]


# --------------------------------------------------------------------------------------------
# frames and training pairs
# --------------------------------------------------------------------------------------------
def split_frames(n_frames: int, fraction: float = 0.5) -> tuple[range, range]:
    """Temporal split: the first ``fraction`` of frames for training, the rest for testing."""
    if n_frames < 2:
        raise InputError(f"a temporal split needs at least 2 frames, the sequence has {n_frames}")
    cut = int(round(n_frames * fraction))
    cut = min(max(cut, 1), n_frames - 1)
    return range(0, cut), range(cut, n_frames)


def training_pairs(
    video: Video,
    frames: Iterable[int] | None = None,
    *,
    factor: int = 1,
    label_source: str = "auto",
    max_pairs: int | None = None,
    ignore_margin: int = 12,
) -> list[Pair]:
    """Image + full-mask pairs from ``video`` (at ``1/factor`` scale) for segmentation training.

    ``label_source``: ``"seg"`` uses annotated SEG frames only (real data, whose TRA markers are
    smaller than the cells), ``"tra"`` uses TRA in every frame (synthetic data, where TRA holds
    full masks), ``"auto"`` uses SEG frames when the video has any, else TRA.

    Real SEG frames are often partial (GOWT1 01: 26 of its 30 SEG frames hold 1-3 of about 23
    cells). With SEG labels and TRA markers available, every marker that no SEG object covers is
    dilated by ``ignore_margin`` full-resolution pixels into the pair's ``ignore`` mask, so that
    unannotated cells are not taught as background.
    """
    if video.image is None:
        raise InputError(f"{video.source or 'video'} has no image frames to train on")
    if label_source not in ("auto", "seg", "tra"):
        raise InputError(f"label_source must be auto, seg or tra, not {label_source!r}")
    frames = list(range(video.n_frames) if frames is None else frames)
    use_seg = label_source == "seg" or (label_source == "auto" and "SEG" in video.labels and video.seg_frames)
    if use_seg:
        if "SEG" not in video.labels:
            raise InputError(f"{video.source}: no SEG annotation to train on (label_source='seg')")
        keep = set(video.seg_frames)
        frames = [f for f in frames if f in keep]
        lab = video.labels["SEG"]
    else:
        if "TRA" not in video.labels:
            key = video.dense_labels()
            if key is None:
                raise InputError(f"{video.source}: no label images (TRA/SEG) to train on")
            lab = key[1]
        else:
            lab = video.labels["TRA"]
    if not frames:
        raise InputError(
            f"{video.source}: no annotated frames in the training range; SEG frames are {video.seg_frames}"
        )
    if max_pairs is not None and len(frames) > max_pairs:
        idx = np.linspace(0, len(frames) - 1, max_pairs).round().astype(int)
        frames = [frames[i] for i in idx]
    pairs = []
    for f in frames:
        img = downsample_image(np.asarray(video.image[f]), factor)
        inst = downsample_labels(np.asarray(lab[f]), factor).astype(np.int32)
        ignore = None
        if use_seg and "TRA" in video.labels:
            ignore = unannotated_regions(downsample_labels(np.asarray(video.labels["TRA"][f]), factor), inst,
                                         max(1, int(np.ceil(ignore_margin / factor))))
        pairs.append(Pair(img, inst, f"{video.source}:{f}", ignore))
    return pairs


def unannotated_regions(markers: np.ndarray, instances: np.ndarray, margin: int) -> np.ndarray | None:
    """Pixels near tracking markers that no instance covers (dilated by ``margin``), minus instances."""
    from scipy import ndimage as ndi

    ids = np.unique(markers[markers > 0])
    if not len(ids):
        return None
    covered = np.bincount(markers[(markers > 0) & (instances > 0)].ravel(), minlength=int(ids.max()) + 1)
    area = np.bincount(markers.ravel(), minlength=int(ids.max()) + 1)
    missing = [i for i in ids if covered[i] < 0.5 * area[i]]
    if not missing:
        return None
    region = np.isin(markers, missing)
    region = ndi.binary_dilation(region, structure=np.ones((3, 3), bool), iterations=margin)
    return region & (instances == 0)


# --------------------------------------------------------------------------------------------
# ground truth of the test window
# --------------------------------------------------------------------------------------------
def relabel_tracks(tra: np.ndarray, lineage: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Make a cut TRA label video valid: split tracks at gaps, drop absent tracks, relink parents.

    Every run of consecutive frames in which a label is present becomes its own track; a run after a
    gap gets the previous run as parent (the CTC convention for a returning cell); the first run of a
    track gets the last run of its original parent when that parent is still present, else 0.

    Returns
    -------
    (tracks, lineage) : (T, H, W) uint16 labels and (N, 4) int64 ``L B E P`` rows sorted by L.
    """
    tra = np.asarray(tra)
    parents: dict[int, int] = {}
    if lineage is not None:
        for row in np.asarray(lineage).reshape(-1, 4):
            parents[int(row[0])] = int(row[3])
    present: dict[int, list[int]] = {}
    for t in range(tra.shape[0]):
        for lab in np.unique(tra[t]):
            if lab:
                present.setdefault(int(lab), []).append(t)
    # runs, in order of first appearance so that parents get smaller labels
    runs: list[tuple[int, int, int]] = []  # (old label, start, end)
    for lab, ts in present.items():
        start = prev = ts[0]
        for t in ts[1:]:
            if t != prev + 1:
                runs.append((lab, start, prev))
                start = t
            prev = t
        runs.append((lab, start, prev))
    runs.sort(key=lambda r: (r[1], r[0]))
    new_id = {run: i + 1 for i, run in enumerate(runs)}
    if len(runs) > 65535:
        raise InputError(f"{len(runs)} track segments do not fit into 16-bit labels")
    first_run: dict[int, tuple[int, int, int]] = {}
    last_run: dict[int, tuple[int, int, int]] = {}
    prev_run: dict[tuple[int, int, int], tuple[int, int, int]] = {}
    for run in sorted(runs, key=lambda r: (r[0], r[1])):
        lab = run[0]
        if lab in last_run:
            prev_run[run] = last_run[lab]
        else:
            first_run[lab] = run
        last_run[lab] = run
    rows = []
    out = np.zeros(tra.shape, np.uint16)
    for run in runs:
        lab, b, e = run
        if run in prev_run:
            p = new_id[prev_run[run]]
        else:
            op = parents.get(lab, 0)
            p = new_id[last_run[op]] if op in last_run and last_run[op][2] < b else 0
        rows.append((new_id[run], b, e, p))
        for t in range(b, e + 1):
            out[t][tra[t] == lab] = new_id[run]
    lin = np.asarray(rows, np.int64).reshape(-1, 4)
    return out, lin[np.argsort(lin[:, 0])]


def _atomic_dir(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))


def _commit_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def write_ctc_labels(folder: Path, name: str, labels: np.ndarray, lineage: np.ndarray | None, txt: str | None) -> None:
    """Write ``labels`` (T, H, W) as ``<name>TTT.tif`` uint16 (3 digits, 4 from 1000 frames) and the track file."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    digits = 3 if labels.shape[0] < 1000 else 4
    for t in range(labels.shape[0]):
        tifffile.imwrite(folder / f"{name}{t:0{digits}d}.tif", np.asarray(labels[t], np.uint16), compression="zlib")
    if txt is not None and lineage is not None:
        lines = "".join(f"{int(a)} {int(b)} {int(c)} {int(d)}\n" for a, b, c, d in np.asarray(lineage).reshape(-1, 4))
        (folder / txt).write_text(lines)


def write_gt_window(
    video: Video,
    frames: Sequence[int],
    out_gt: str | Path,
    *,
    factor: int = 1,
    crop: Sequence[int] | None = None,
) -> dict[str, int]:
    """Write the ground truth of ``frames`` (renumbered from 0) at the evaluation scale, atomically.

    ``out_gt`` becomes a CTC ``NN_GT`` folder with ``TRA`` (relabelled, valid) and ``SEG`` (the
    annotated frames inside the window). Returns counts: frames, tracks, SEG frames.
    """
    if "TRA" not in video.labels or video.lineage is None:
        raise InputError(f"{video.source}: the test sequence needs TRA ground truth with man_track.txt")
    out_gt = Path(out_gt)
    frames = list(frames)
    tra = np.stack([centre_crop(downsample_labels(np.asarray(video.labels["TRA"][f]), factor), crop) for f in frames])
    tra, lin = relabel_tracks(tra, video.lineage)
    tmp = _atomic_dir(out_gt)
    try:
        write_ctc_labels(tmp / "TRA", "man_track", tra, lin, "man_track.txt")
        n_seg = 0
        if "SEG" in video.labels:
            (tmp / "SEG").mkdir()
            import tifffile

            for i, f in enumerate(frames):
                if f in video.seg_frames:
                    seg = centre_crop(downsample_labels(np.asarray(video.labels["SEG"][f]), factor), crop)
                    tifffile.imwrite(tmp / "SEG" / f"man_seg{i:03d}.tif", seg.astype(np.uint16), compression="zlib")
                    n_seg += 1
        _commit_dir(tmp, out_gt)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"frames": len(frames), "tracks": int(len(lin)), "seg_frames": n_seg}


def window_images(
    video: Video, frames: Sequence[int], *, factor: int = 1, crop: Sequence[int] | None = None
) -> np.ndarray:
    """Raw test frames at the evaluation scale, (T, H, W) float32."""
    if video.image is None:
        raise InputError(f"{video.source}: no image frames")
    return np.stack([centre_crop(downsample_image(np.asarray(video.image[f]), factor), crop) for f in frames])
