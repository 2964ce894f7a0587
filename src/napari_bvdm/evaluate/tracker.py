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


class _TrackBook:
    """The ``L B E P`` rows of the tracks made so far and the next free track id."""

    def __init__(self) -> None:
        self.rows: dict[int, list[int]] = {}  # track -> [L, B, E, P]
        self.next_id = 1

    def new(self, t: int, parent: int) -> int:
        """Start a track at frame ``t`` with ``parent`` and return its id."""
        if self.next_id > 65535:
            raise ValueError("more than 65535 tracks do not fit into 16-bit CTC labels")
        tid = self.next_id
        self.next_id += 1
        self.rows[tid] = [tid, t, t, parent]
        return tid

    def lineage(self) -> np.ndarray:
        """The rows as an ``(N, 4)`` int64 array sorted by label."""
        return np.asarray(sorted(self.rows.values()), np.int64).reshape(-1, 4)


def _areas(frame: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Pixel count of each of ``ids`` in ``frame``."""
    if not len(ids):
        return np.zeros(0, np.int64)
    return np.bincount(frame.ravel().astype(np.int64))[ids]


def _iou_links(inter: np.ndarray, area_p: np.ndarray, area_c: np.ndarray, min_iou: float) -> dict[int, int]:
    """Maximum-IoU assignment ``{current index: previous index}`` of pairs with IoU >= ``min_iou``."""
    from scipy.optimize import linear_sum_assignment

    link: dict[int, int] = {}
    if inter.size:
        iou = inter / (area_p[:, None] + area_c[None, :] - inter)
        r, c = linear_sum_assignment(-iou)
        for i, j in zip(r, c, strict=True):
            if iou[i, j] >= min_iou:
                link[int(j)] = int(i)
    return link


def _children(
    inter: np.ndarray, area_c: np.ndarray, link: dict[int, int], config: TrackerConfig,
) -> dict[int, list[tuple[float, int]]]:
    """Per previous index, its linked continuation and daughter candidates as ``(overlap, j)``."""
    children: dict[int, list[tuple[float, int]]] = {}
    if not inter.shape[0]:
        return children
    for j in range(inter.shape[1]):
        if j in link:
            i = link[j]
            children.setdefault(i, []).append((float(inter[i, j] / area_c[j]), j))
            continue
        i = int(np.argmax(inter[:, j]))
        frac = inter[i, j] / area_c[j]
        if config.divisions and frac >= config.min_daughter_overlap:
            children.setdefault(i, []).append((float(frac), j))
    return children


def _link_frame(
    prev: np.ndarray, cur: np.ndarray, t: int, prev_map: dict[int, int], book: _TrackBook,
    config: TrackerConfig,
) -> dict[int, int]:
    """Track ids ``{instance id: track id}`` of frame ``t`` given those of frame ``t - 1``."""
    inter, pi, ci = overlaps(prev, cur)
    area_c = _areas(cur, ci)
    link = _iou_links(inter, _areas(prev, pi), area_c, config.min_iou)
    cur_map: dict[int, int] = {}
    assigned: set[int] = set()
    for i, kids in _children(inter, area_c, link, config).items():
        mother = prev_map[int(pi[i])]
        if config.divisions and len(kids) >= 2:
            # the mother's track already ends at t - 1; the two largest overlaps become daughters
            for _, j in sorted(kids, reverse=True)[:2]:
                cur_map[int(ci[j])] = book.new(t, mother)
                assigned.add(j)
        else:
            for _, j in kids:
                if j in link:
                    cur_map[int(ci[j])] = mother
                    book.rows[mother][2] = t
                    assigned.add(j)
    for j in range(len(ci)):
        if j not in assigned:
            cur_map[int(ci[j])] = book.new(t, 0)
    return cur_map


def _relabel(frame: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """``frame`` with each instance id replaced by its track id (uint16; unmapped ids become 0)."""
    lut = np.zeros(int(frame.max()) + 1, np.uint16)
    for k, v in mapping.items():
        lut[k] = v
    return lut[frame]


def track_instances(masks: np.ndarray, config: TrackerConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Link per-frame instance labels ``(T, H, W)`` into tracks.

    Returns
    -------
    (tracks, lineage) : ``(T, H, W)`` uint16 track-id images and ``(N, 4)`` int64 ``L B E P`` rows.
    """
    config = config or TrackerConfig()
    masks = np.asarray(masks)
    tracks = np.zeros(masks.shape, np.uint16)
    book = _TrackBook()
    prev_map: dict[int, int] = {}  # instance id in previous frame -> track id
    for t in range(masks.shape[0]):
        cur = masks[t]
        if t == 0 or not prev_map:
            cur_map = {int(c): book.new(t, 0) for c in np.unique(cur[cur > 0])}
        else:
            cur_map = _link_frame(masks[t - 1], cur, t, prev_map, book, config)
        if cur_map:
            tracks[t] = _relabel(cur, cur_map)
        prev_map = cur_map
    return tracks, book.lineage()
