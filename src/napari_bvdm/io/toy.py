"""The toy CTC sequence of ctc-format.md §6.1: a tiny synthetic video with a division.

Used by tests, examples and sample data (it holds no real data). Canvas 96 x 128, 5 frames, discs of
radius 9: track 1 moves right, track 2 moves down, track 3 divides into 4 and 5 at frame 3.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TOY_LINEAGE", "toy_sequence"]

TOY_LINEAGE = np.array([[1, 0, 4, 0], [2, 0, 4, 0], [3, 0, 2, 0], [4, 3, 4, 3], [5, 3, 4, 3]],
                       np.int64)


def _disc(canvas: np.ndarray, cy: int, cx: int, r: int, value: int) -> None:
    yy, xx = np.ogrid[: canvas.shape[0], : canvas.shape[1]]
    canvas[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = value


def toy_sequence(radius: int = 9, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The documented toy sequence.

    Parameters
    ----------
    radius : int
        Disc radius in pixels (9 in the reference; 7 gives the "smaller discs" variant).
    seed : int
        Seed of the Gaussian noise (sigma 100) on the raw image.

    Returns
    -------
    image : ndarray (5, 96, 128) uint16
        Background 1000, discs 3000, plus noise.
    labels : ndarray (5, 96, 128) uint16
        Track ids.
    lineage : ndarray (5, 4) int64
        ``1 0 4 0``, ``2 0 4 0``, ``3 0 2 0``, ``4 3 4 3``, ``5 3 4 3``.
    """
    labels = np.zeros((5, 96, 128), np.uint16)
    for t in range(5):
        _disc(labels[t], 25, 20 + 8 * t, radius, 1)
        _disc(labels[t], 20 + 6 * t, 100, radius, 2)
        if t <= 2:
            _disc(labels[t], 70, 40 + 3 * t, radius, 3)
        else:
            _disc(labels[t], 62 - 3 * (t - 3), 50, radius, 4)
            _disc(labels[t], 80 + 3 * (t - 3), 50, radius, 5)
    rng = np.random.default_rng(seed)
    image = np.where(labels > 0, 3000.0, 1000.0) + rng.normal(0, 100, labels.shape)
    return image.clip(0, 65535).astype(np.uint16), labels, TOY_LINEAGE.copy()
