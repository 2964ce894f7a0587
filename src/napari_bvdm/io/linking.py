"""Whether a label video's ids follow cells over time, and linking of labels numbered frame by frame.

A segmenter's output numbers the objects of every frame afresh (often 1..N in scan order), so the same id
appears in consecutive frames on different cells. Shared ids alone therefore do not show a tracking; the
test here asks whether an id shared by two consecutive frames sits on the nearest object of the earlier
frame, as it does when the labels come from a tracker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LinkCheck", "check_linked", "relabel_frames_by_tracks"]

#: share of shared ids that must sit on the nearest earlier object for labels to count as tracked
LINKED_SHARE = 0.97


@dataclass(frozen=True)
class LinkCheck:
    """Result of :func:`check_linked`: ``consistent`` of ``compared`` shared ids followed their cell."""

    consistent: int
    compared: int

    @property
    def share(self) -> float:
        return self.consistent / self.compared if self.compared else 1.0

    @property
    def linked(self) -> bool:
        return self.share >= LINKED_SHARE

    def describe(self) -> str:
        if self.linked:
            return f"ids follow the cells over time ({self.consistent} of {self.compared} checked)"
        return (f"labels are numbered frame by frame: only {self.consistent} of {self.compared} ids shared by "
                "consecutive frames stay on the same cell")


def _centroids(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, (N, 2) centroids) of the objects of one label frame."""
    flat = frame.ravel()
    fg = np.flatnonzero(flat)
    if not len(fg):
        return np.zeros(0, np.int64), np.zeros((0, 2))
    ids, inv, counts = np.unique(flat[fg], return_inverse=True, return_counts=True)
    rows, cols = np.divmod(fg, frame.shape[1])
    cy = np.bincount(inv, weights=rows) / counts
    cx = np.bincount(inv, weights=cols) / counts
    return ids.astype(np.int64), np.stack([cy, cx], axis=1)


def check_linked(labels: Any, pairs: int = 12) -> LinkCheck:
    """Check whether the ids of a (T, Y, X) label video are track ids.

    Parameters
    ----------
    labels : array-like (T, Y, X) of integers
        Label video; ``labels[t]`` is read for a few evenly spread pairs of consecutive frames only.
    pairs : int
        Number of consecutive frame pairs checked.

    Returns
    -------
    LinkCheck
        For every id present in both frames of a pair: whether the object of the earlier frame nearest to
        the id's object in the later frame carries the same id.
    """
    t = labels.shape[0]
    if t < 2:
        return LinkCheck(0, 0)
    consistent = compared = 0
    for i in np.unique(np.linspace(0, t - 2, min(pairs, t - 1)).round().astype(int)):
        ids_a, ca = _centroids(np.asarray(labels[i]))
        ids_b, cb = _centroids(np.asarray(labels[i + 1]))
        shared, ia, ib = np.intersect1d(ids_a, ids_b, return_indices=True)
        if not len(shared) or len(ids_a) < 2:
            continue
        d = np.linalg.norm(cb[ib][:, None, :] - ca[None, :, :], axis=2)
        nearest = ids_a[np.argmin(d, axis=1)]
        consistent += int((nearest == shared).sum())
        compared += len(shared)
    return LinkCheck(consistent, compared)


def relabel_frames_by_tracks(labels: Any, track_ids: list[np.ndarray]) -> np.ndarray:
    """A label video whose objects carry the given track ids.

    Parameters
    ----------
    labels : array-like (T, Y, X)
        Label video numbered frame by frame.
    track_ids : list of (N_t,) int arrays
        For frame ``t``, the track id of each object in the order of ``np.unique(labels[t])`` without 0.

    Returns
    -------
    (T, Y, X) uint32 array with track ids.
    """
    out = np.zeros(labels.shape, np.uint32)
    for t in range(labels.shape[0]):
        frame = np.asarray(labels[t])
        ids = np.unique(frame)
        ids = ids[ids != 0]
        lut_keys = np.concatenate([[0], ids])
        lut_vals = np.concatenate([[0], np.asarray(track_ids[t], np.uint32)])
        out[t] = lut_vals[np.searchsorted(lut_keys, frame)]
    return out
