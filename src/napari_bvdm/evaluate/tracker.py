"""A simple overlap tracker: per-frame instances -> CTC tracks with lineage.

Consecutive frames are linked by maximum-IoU assignment (Hungarian) above ``min_iou``. A current
instance left unassigned that lies mostly inside a previous cell (``min_daughter_overlap`` of its
own area) is a daughter candidate of that cell; a previous cell with two candidates (its
continuation included) divides: its track ends and both get new tracks with it as parent.
Everything else starts a new track with parent 0. The result is valid CTC by construction: every
track is present in every frame of its span, and daughters start right after the mother ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime.config import Config

__all__ = ["TrackerConfig", "track_instances", "overlaps"]


@dataclass
class TrackerConfig(Config):
    """Linking thresholds.

    Attributes
    ----------
    min_iou : smallest IoU that links an instance to one in the previous frame.
    min_daughter_overlap : fraction of an unlinked instance inside a previous cell for it to count
        as that cell's daughter.
    divisions : detect divisions (else every unlinked instance starts a new root track).
    """

    min_iou: float = 0.2
    min_daughter_overlap: float = 0.2
    divisions: bool = True

    def check(self) -> None:
        self._require(0.0 < self.min_iou <= 1.0, "min_iou", "must be in (0, 1]")
        self._require(0.0 < self.min_daughter_overlap <= 1.0, "min_daughter_overlap", "must be in (0, 1]")


def overlaps(prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection counts between instances of two label images.

    Returns ``(inter, prev_ids, cur_ids)``: ``inter[i, j]`` is the pixel count of
    ``prev == prev_ids[i]`` and ``cur == cur_ids[j]``.
    """
    pi = np.unique(prev[prev > 0])
    ci = np.unique(cur[cur > 0])
    inter = np.zeros((len(pi), len(ci)), np.int64)
    if len(pi) and len(ci):
        both = (prev > 0) & (cur > 0)
        a = np.searchsorted(pi, prev[both])
        b = np.searchsorted(ci, cur[both])
        np.add.at(inter, (a, b), 1)
    return inter, pi, ci


def track_instances(masks: np.ndarray, config: TrackerConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Link per-frame instance labels ``(T, H, W)`` into tracks.

    Returns
    -------
    (tracks, lineage) : ``(T, H, W)`` uint16 track-id images and ``(N, 4)`` int64 ``L B E P`` rows.
    """
    from scipy.optimize import linear_sum_assignment

    config = config or TrackerConfig()
    masks = np.asarray(masks)
    n_t = masks.shape[0]
    tracks = np.zeros(masks.shape, np.uint16)
    rows: dict[int, list[int]] = {}  # track -> [L, B, E, P]
    next_id = 1
    prev_map: dict[int, int] = {}  # instance id in previous frame -> track id

    def new_track(t: int, parent: int) -> int:
        nonlocal next_id
        if next_id > 65535:
            raise ValueError("more than 65535 tracks do not fit into 16-bit CTC labels")
        tid = next_id
        next_id += 1
        rows[tid] = [tid, t, t, parent]
        return tid

    for t in range(n_t):
        cur = masks[t]
        cur_map: dict[int, int] = {}
        if t == 0 or not prev_map:
            for c in np.unique(cur[cur > 0]):
                cur_map[int(c)] = new_track(t, 0)
        else:
            prev = masks[t - 1]
            inter, pi, ci = overlaps(prev, cur)
            area_p = np.bincount(prev.ravel().astype(np.int64))[pi] if len(pi) else np.zeros(0, np.int64)
            area_c = np.bincount(cur.ravel().astype(np.int64))[ci] if len(ci) else np.zeros(0, np.int64)
            link: dict[int, int] = {}  # cur index -> prev index
            if len(pi) and len(ci):
                iou = inter / (area_p[:, None] + area_c[None, :] - inter)
                r, c = linear_sum_assignment(-iou)
                for i, j in zip(r, c, strict=True):
                    if iou[i, j] >= config.min_iou:
                        link[int(j)] = int(i)
            children: dict[int, list[tuple[float, int]]] = {}
            if len(pi):
                for j in range(len(ci)):
                    if j in link:
                        i = link[j]
                        children.setdefault(i, []).append((float(inter[i, j] / area_c[j]), j))
                        continue
                    i = int(np.argmax(inter[:, j]))
                    frac = inter[i, j] / area_c[j]
                    if config.divisions and frac >= config.min_daughter_overlap:
                        children.setdefault(i, []).append((float(frac), j))
            assigned: set[int] = set()
            for i, kids in children.items():
                mother = prev_map[int(pi[i])]
                if config.divisions and len(kids) >= 2:
                    kids = sorted(kids, reverse=True)
                    for _, j in kids[:2]:
                        cur_map[int(ci[j])] = new_track(t, mother)
                        assigned.add(j)
                    # mother's track already ends at t - 1
                else:
                    for _, j in kids:
                        if j in link:
                            cur_map[int(ci[j])] = mother
                            rows[mother][2] = t
                            assigned.add(j)
            for j in range(len(ci)):
                if j not in assigned:
                    cur_map[int(ci[j])] = new_track(t, 0)
        if cur_map:
            lut = np.zeros(int(cur.max()) + 1, np.uint16)
            for k, v in cur_map.items():
                lut[k] = v
            tracks[t] = lut[cur]
        prev_map = cur_map
    lineage = np.asarray(sorted(rows.values()), np.int64).reshape(-1, 4)
    return tracks, lineage
