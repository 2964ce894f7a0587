"""Training pairs for the flow model: consecutive real masks of the same track, cell-centred.

Sources: a CTC ground truth (TRA markers, with ``man_track.txt``), any tracked label video, or an
untracked label video (per-frame ids, e.g. ``ERR_SEG``) linked by overlap with :func:`link_by_overlap`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.video import InputError
from .crops import crop_centred, crop_window, objects

__all__ = ["MaskPairs", "mask_pairs", "link_by_overlap", "is_tracked", "load_label_video"]


@dataclass
class MaskPairs:
    """Consecutive mask crops: ``prev[i]`` (frame t) and ``cur[i]`` (frame t+1) of track ``track[i]``."""

    prev: np.ndarray  # (N, s, s) bool
    cur: np.ndarray  # (N, s, s) bool
    track: np.ndarray  # (N,) int
    frame: np.ndarray  # (N,) int, frame of ``prev``
    skipped_too_large: int = 0

    def __len__(self) -> int:
        return len(self.track)

    def split(self, val_fraction: float, seed: int = 0) -> tuple[MaskPairs, MaskPairs]:
        """Split by track (held-out tracks are never seen in training)."""
        tracks = np.unique(self.track)
        rng = np.random.default_rng(seed)
        rng.shuffle(tracks)
        n_val = max(1, int(round(len(tracks) * val_fraction))) if len(tracks) > 1 else 0
        val = np.isin(self.track, tracks[:n_val])
        return self.subset(~val), self.subset(val)

    def subset(self, keep: np.ndarray) -> MaskPairs:
        return MaskPairs(self.prev[keep], self.cur[keep], self.track[keep], self.frame[keep])

    def median_area(self) -> float:
        return float(np.median(self.cur.reshape(len(self), -1).sum(1))) if len(self) else 0.0


def is_tracked(labels: np.ndarray, max_jump_fraction: float = 0.2) -> bool:
    """Whether ids behave like tracks rather than per-frame numbering.

    Tracks: each id occupies one unbroken run of frames, and at most ``max_jump_fraction`` of its
    consecutive occurrences do not overlap at all (real cells do jump now and then; per-frame ids
    such as ``1..N`` in every frame almost never overlap their namesake).
    """
    t = labels.shape[0]
    seen: dict[int, int] = {}
    n_pairs = n_jumps = 0
    for i in range(t):
        ids = np.unique(labels[i])
        for lab in ids[ids > 0]:
            last = seen.get(int(lab))
            if last is not None and last != i - 1:
                return False
            if last is not None:
                n_pairs += 1
                n_jumps += not np.any((labels[i - 1] == lab) & (labels[i] == lab))
            seen[int(lab)] = i
    return n_pairs == 0 or n_jumps <= max_jump_fraction * n_pairs


def link_by_overlap(labels: np.ndarray, min_overlap: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Link per-frame labels into tracks by overlap; return ``(track_labels uint16, lineage (N,4))``.

    An object continues the previous-frame object it overlaps most when that overlap covers at least
    ``min_overlap`` of the smaller of the two and the match is mutual; a previous object with two or
    more such successors divides (its track ends, each successor starts a daughter track).
    """
    labels = np.asarray(labels)
    t = labels.shape[0]
    out = np.zeros(labels.shape, dtype=np.uint16)
    rows: dict[int, list[int]] = {}  # track -> [B, E, P]
    prev_map: dict[int, int] = {}  # previous-frame object id -> track id
    prev = None
    next_id = 1
    for i in range(t):
        cur = labels[i]
        ids = [int(v) for v in np.unique(cur) if v > 0]
        cur_map: dict[int, int] = {}
        if prev is not None and ids:
            succ: dict[int, list[int]] = {}
            best_prev: dict[int, int] = {}
            m = (prev > 0) & (cur > 0)
            pairs, counts = np.unique(np.stack([prev[m], cur[m]]).reshape(2, -1), axis=1, return_counts=True)
            area_p = dict(zip(*np.unique(prev[prev > 0], return_counts=True), strict=True))
            area_c = dict(zip(*np.unique(cur[cur > 0], return_counts=True), strict=True))
            best: dict[int, tuple[int, int]] = {}
            for (p, c), n in zip(pairs.T, counts, strict=True):
                p, c = int(p), int(c)
                if n < min_overlap * min(area_p[p], area_c[c]):
                    continue
                succ.setdefault(p, []).append(c)
                if n > best.get(c, (0, 0))[1]:
                    best[c] = (p, int(n))
            best_prev = {c: pn[0] for c, pn in best.items()}
            for p, cs in succ.items():
                cs = [c for c in cs if best_prev.get(c) == p]
                if len(cs) == 1:
                    cur_map[cs[0]] = prev_map[p]
                elif len(cs) >= 2:
                    for c in cs:
                        cur_map[c] = -prev_map[p]  # daughter of this track
        for c in ids:
            tr = cur_map.get(c)
            if tr is None or tr < 0:
                parent = -tr if tr is not None else 0
                tr = next_id
                next_id += 1
                rows[tr] = [i, i, parent]
                cur_map[c] = tr
            rows[tr][1] = i
            out[i][cur == c] = tr
        prev_map = cur_map
        prev = cur
    if next_id > 65535:
        raise InputError(f"linking gave {next_id - 1} tracks; CTC labels hold at most 65535")
    lineage = np.array([[k, *v] for k, v in sorted(rows.items())], dtype=np.int64).reshape(-1, 4)
    # a parent must end before its daughters start (it does: it has no successor in that frame)
    return out, lineage


def mask_pairs(
    labels: np.ndarray,
    crop_size: int = 96,
    *,
    tracked: bool | None = None,
    max_pairs: int | None = None,
    seed: int = 0,
) -> MaskPairs:
    """All consecutive same-track mask pairs of a label video ``(T, H, W)``, cropped cell-centred.

    Parameters
    ----------
    tracked : whether ids are tracks; ``None`` checks with :func:`is_tracked` and links by overlap
        when they are not (with a warning).
    max_pairs : keep at most this many (random, seeded) pairs.

    Objects whose bounding box does not fit ``crop_size`` are skipped and counted.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise InputError(f"expected a label video (T, H, W), got shape {labels.shape}")
    if labels.shape[0] < 2:
        raise InputError("a label video needs at least 2 frames to give consecutive mask pairs")
    if tracked is None:
        tracked = is_tracked(labels)
        if not tracked:
            warnings.warn("labels are not tracks (ids jump or reappear); linking them by overlap", stacklevel=2)
    if not tracked:
        labels, _ = link_by_overlap(labels)
    prev_l, cur_l, tr_l, fr_l = [], [], [], []
    skipped = 0
    prev_obj = objects(labels[0])
    for t in range(labels.shape[0] - 1):
        cur_obj = objects(labels[t + 1])
        for lab, bb in prev_obj.items():
            bb2 = cur_obj.get(lab)
            if bb2 is None:
                continue
            ext = max(bb[0].stop - bb[0].start, bb[1].stop - bb[1].start,
                      bb2[0].stop - bb2[0].start, bb2[1].stop - bb2[1].start)
            if ext > crop_size:
                skipped += 1
                continue
            y0, x0 = crop_window(bb, crop_size)
            prev_l.append(crop_centred(labels[t], y0, x0, crop_size) == lab)
            y0, x0 = crop_window(bb2, crop_size)
            cur_l.append(crop_centred(labels[t + 1], y0, x0, crop_size) == lab)
            tr_l.append(lab)
            fr_l.append(t)
        prev_obj = cur_obj
    if not tr_l:
        raise InputError("no consecutive mask pairs of the same track found (each cell appears in one frame only?)")
    pairs = MaskPairs(np.stack(prev_l), np.stack(cur_l), np.asarray(tr_l), np.asarray(fr_l), skipped)
    if max_pairs is not None and len(pairs) > max_pairs:
        keep = np.zeros(len(pairs), bool)
        keep[np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False)] = True
        sk = pairs.skipped_too_large
        pairs = pairs.subset(keep)
        pairs.skipped_too_large = sk
    return pairs


def load_label_video(path: str | Path, *, lazy: bool = False) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Label video for training from a CTC dataset/sequence folder, a label TIFF stack or a folder of TIFFs.

    Returns ``(labels (T,H,W), lineage or None, kind)``. CTC ground truth gives TRA markers (tracked,
    every frame); a plain label video (integer TIFF stack or frame folder, values checked by
    :func:`~napari_bvdm.io.readers.label_video`) is returned as it is. ``lazy`` returns a lazily read array
    (frames decoded on access).
    """
    from ..io.readers import label_video, read_video

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; give a CTC dataset folder (e.g. Fluo-N2DH-GOWT1), "
                         "a sequence folder (01) or a label video (TIFF stack or folder of TIFFs)")
    video = read_video(path, lazy=lazy)
    main = video.main_labels()
    if main is None and not (path / "01").exists() and video.image is not None \
            and np.dtype(video.image.dtype).kind in "ui":
        main = ("labels", label_video(video).labels["labels"])  # a plain label video
    if main is None:
        raise InputError(f"{path} holds no labels (no _GT/TRA, SEG or label images); "
                         "the flow model trains on masks")
    kind, lab = main
    return (lab if lazy else np.asarray(lab)), video.lineage, kind
