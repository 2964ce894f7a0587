"""Previews of a video: label outlines drawn over frames, as a PNG strip and an animated GIF."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _to_uint8(frame: np.ndarray, lo: float, hi: float) -> np.ndarray:
    f = (np.asarray(frame, dtype=np.float32) - lo) / max(hi - lo, 1e-6)
    return (np.clip(f, 0, 1) * 255).astype(np.uint8)


def _outline_colours(labels: np.ndarray) -> np.ndarray:
    """Saturated RGB colour per label id (stable: golden-ratio hues from the id), id 0 black."""
    from matplotlib.colors import hsv_to_rgb

    ids = np.arange(int(labels.max()) + 1, dtype=np.float64)
    hsv = np.stack([(ids * 0.618033988749895) % 1.0, np.ones_like(ids), np.ones_like(ids)], axis=1)
    rgb = (hsv_to_rgb(hsv) * 255).astype(np.uint8)
    rgb[0] = 0
    return rgb


def overlay(frame: np.ndarray, labels: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """An RGB image of ``frame`` with the outline of every label in its own colour."""
    from skimage.segmentation import find_boundaries

    grey = _to_uint8(frame, lo, hi)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if labels is not None and labels.max() > 0:
        edge = find_boundaries(labels, mode="inner")
        rgb[edge] = _outline_colours(labels)[labels[edge]]
    return rgb


def contrast_limits(frames: Sequence[np.ndarray]) -> tuple[float, float]:
    sample = np.concatenate([np.asarray(f, dtype=np.float32).ravel()[::7] for f in frames])
    return float(np.percentile(sample, 0.5)), float(np.percentile(sample, 99.8))


def write_preview(
    frames: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    out_png: str | Path,
    out_gif: str | Path | None = None,
    max_strip: int = 6,
    gif_ms: int = 150,
) -> list[Path]:
    """Write a PNG strip of up to ``max_strip`` frames (top: raw, bottom: outlines) and an animated GIF.

    Returns the paths written.
    """
    from PIL import Image

    frames = [np.asarray(f) for f in frames]
    labels = [np.asarray(lab) for lab in labels]
    lo, hi = contrast_limits(frames)
    idx = np.unique(np.linspace(0, len(frames) - 1, min(max_strip, len(frames))).round().astype(int))
    top = np.concatenate([np.repeat(_to_uint8(frames[i], lo, hi)[..., None], 3, 2) for i in idx], axis=1)
    bottom = np.concatenate([overlay(frames[i], labels[i], lo, hi) for i in idx], axis=1)
    out = [Path(out_png)]
    Image.fromarray(np.concatenate([top, bottom], axis=0)).save(out_png)
    if out_gif is not None:
        imgs = [Image.fromarray(overlay(f, lab, lo, hi)) for f, lab in zip(frames, labels, strict=True)]
        imgs[0].save(out_gif, save_all=True, append_images=imgs[1:], duration=gif_ms, loop=0)
        out.append(Path(out_gif))
    return out
