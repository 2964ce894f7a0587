"""Quality measures of a (real or synthetic) video, computed the same way for both.

- :func:`temporal_consistency`: mean absolute difference inside each cell between frame t+1 and frame
  t warped by the cell's motion (the flow model's mask-to-mask flow, on cell-centred crops), relative
  to the cell's mean intensity. Low = textures move with the cells; independent frames score high.
- :func:`cell_texture_stats`: per-cell intensity statistics (mean, coefficient of variation, fine-scale
  contrast), e.g. to check that a long track's texture does not drift.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..flow.crops import crop_centred, crop_window, objects

__all__ = ["temporal_consistency", "cell_texture_stats"]


def temporal_consistency(image: Any, labels: Any, flow: Any, frames: range | None = None, *, crop: int = 96,
                         erode: int = 2, background: float | None = None,
                         smooth: float = 0.0) -> dict[str, float]:
    """Relative MAD between frame t+1 and frame t warped by each cell's motion, averaged over cells.

    Parameters
    ----------
    image, labels : (T, H, W) arrays (lazy is fine); labels are track ids.
    flow : a :class:`~napari_bvdm.flow.FlowModel` giving the motion of each cell's mask.
    frames : pairs (t, t+1) for t in ``frames`` (default all).
    erode : pixels near the cell edge are left out.
    background : intensity subtracted before taking ratios (default: 1st percentile of the first frame).
    smooth : Gaussian sigma applied to both frames first: > 0 measures the texture scale without the
        independent per-pixel camera noise (which dominates noisy data such as GOWT1).
    """
    import torch

    from ..flow.net import warp

    t_all = range(image.shape[0] - 1) if frames is None else frames
    vals = []
    st = ndi.generate_binary_structure(2, 1)
    nxt_img, nxt_lab, nxt_t = None, None, -1
    for t in t_all:
        cur_img = nxt_img if nxt_img is not None and nxt_t == t else np.asarray(image[t], np.float32)
        cur_lab = nxt_lab if nxt_lab is not None and nxt_t == t else np.asarray(labels[t])
        nxt_img, nxt_lab, nxt_t = np.asarray(image[t + 1], np.float32), np.asarray(labels[t + 1]), t + 1
        if background is None:
            background = float(np.percentile(cur_img, 1))
        o0, o1 = objects(cur_lab), objects(nxt_lab)
        ids = [i for i in o0 if i in o1]
        if not ids:
            continue
        c0 = [crop_window(o0[i], crop) for i in ids]
        c1 = [crop_window(o1[i], crop) for i in ids]
        m0 = np.stack([crop_centred(cur_lab, *c, crop) == i for c, i in zip(c0, ids, strict=True)])
        m1 = np.stack([crop_centred(nxt_lab, *c, crop) == i for c, i in zip(c1, ids, strict=True)])
        i0 = np.stack([crop_centred(cur_img, *c, crop) for c in c0]) - background
        i1 = np.stack([crop_centred(nxt_img, *c, crop) for c in c1]) - background
        if smooth > 0:
            i0 = ndi.gaussian_filter(i0, (0, smooth, smooth))
            i1 = ndi.gaussian_filter(i1, (0, smooth, smooth))
        u = torch.from_numpy(flow.predict(m0, m1))
        w_img = warp(torch.from_numpy(i0)[:, None], u)[:, 0].numpy()
        w_m = warp(torch.from_numpy(m0.astype(np.float32))[:, None], u)[:, 0].numpy() > 0.5
        for k in range(len(ids)):
            region = ndi.binary_erosion(m1[k] & w_m[k], st, iterations=erode)
            if region.sum() < 20:
                continue
            ref = float(i1[k][region].mean())
            if ref <= 0:
                continue
            vals.append(float(np.abs(i1[k][region] - w_img[k][region]).mean()) / ref)
    arr = np.asarray(vals)
    return {"rel_mad": float(arr.mean()) if arr.size else float("nan"),
            "rel_mad_median": float(np.median(arr)) if arr.size else float("nan"), "cells": int(arr.size)}


def cell_texture_stats(frame: np.ndarray, label_frame: np.ndarray, ids: list[int] | None = None, *,
                       erode: int = 2, background: float = 0.0) -> dict[int, dict[str, float]]:
    """Per-cell ``mean``, ``cv`` (std / mean) and ``fine`` (std of frame minus its sigma-1 blur, / mean)."""
    f = np.asarray(frame, np.float32) - background
    lab = np.asarray(label_frame)
    fine = f - ndi.gaussian_filter(f, 1.0)
    st = ndi.generate_binary_structure(2, 1)
    out = {}
    for i, sl in objects(lab).items():
        if ids is not None and i not in ids:
            continue
        m = ndi.binary_erosion(lab[sl] == i, st, iterations=erode)
        if m.sum() < 20:
            continue
        v = f[sl][m]
        mean = float(v.mean())
        if mean <= 0:
            continue
        out[i] = {"mean": mean, "cv": float(v.std() / mean), "fine": float(fine[sl][m].std() / mean)}
    return out
