"""Differences between the versions of our dependencies that the package supports."""

from __future__ import annotations

import numpy as np

__all__ = ["remove_small_objects"]


def remove_small_objects(arr: np.ndarray, min_size: int) -> np.ndarray:
    """Drop objects (labels or a boolean mask) of fewer than ``min_size`` pixels.

    scikit-image 0.26 deprecated ``min_size`` (objects smaller than it) for ``max_size`` (objects no
    larger than it); both spellings give the same result here.
    """
    from skimage import morphology

    try:
        return morphology.remove_small_objects(arr, max_size=min_size - 1)
    except TypeError:  # scikit-image < 0.26
        return morphology.remove_small_objects(arr, min_size=min_size)
