"""Cell-centred crops: every cell is cut out centred on its bounding-box centre (as in BVDM)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["objects", "crop_window", "crop_centred", "paste_window", "needed_crop"]


def objects(label_frame: np.ndarray) -> dict[int, tuple[slice, slice]]:
    """Bounding boxes ``{label: (slice_y, slice_x)}`` of the labels present in one frame."""
    lab = np.asarray(label_frame)
    out: dict[int, tuple[slice, slice]] = {}
    if not lab.any():
        return out
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is not None:
            out[i] = sl
    return out


def crop_window(bbox: tuple[slice, slice], size: int) -> tuple[int, int]:
    """Top-left corner ``(y0, x0)`` of the ``size`` x ``size`` window centred on ``bbox``'s centre."""
    cy = (bbox[0].start + bbox[0].stop) // 2
    cx = (bbox[1].start + bbox[1].stop) // 2
    return cy - size // 2, cx - size // 2


def crop_centred(image: np.ndarray, y0: int, x0: int, size: int, fill=0) -> np.ndarray:
    """``image[y0:y0+size, x0:x0+size]`` with ``fill`` where the window leaves the image."""
    h, w = image.shape[-2:]
    out = np.full(image.shape[:-2] + (size, size), fill, dtype=image.dtype)
    ys, ye = max(y0, 0), min(y0 + size, h)
    xs, xe = max(x0, 0), min(x0 + size, w)
    if ys < ye and xs < xe:
        out[..., ys - y0:ye - y0, xs - x0:xe - x0] = image[..., ys:ye, xs:xe]
    return out


def paste_window(
    shape: tuple[int, int], y0: int, x0: int, size: int
) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices ``(dst, src)`` to paste a ``size`` crop at ``(y0, x0)`` into an image of ``shape``."""
    h, w = shape
    ys, ye = max(y0, 0), min(y0 + size, h)
    xs, xe = max(x0, 0), min(x0 + size, w)
    return (slice(ys, ye), slice(xs, xe)), (slice(ys - y0, ye - y0), slice(xs - x0, xe - x0))


def needed_crop(extent: int, base: int, multiple: int = 16, margin: int = 4) -> int:
    """Smallest crop >= ``base`` that is a multiple of ``multiple`` and holds ``extent`` + margin pixels."""
    need = max(base, extent + 2 * margin)
    return int(-(-need // multiple) * multiple)
