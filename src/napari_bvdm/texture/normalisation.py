"""Intensity normalisation estimated from the data (never hard-coded).

``norm = (raw - offset) / scale``. The offset is the camera floor / background level and the scale the
span up to the bright end of the cells, both from robust percentiles of a sample of frames. Shape-model
brightness and texture models use the same normalised units, so brightness travels between stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io.video import InputError


@dataclass(frozen=True)
class Normalisation:
    """Affine intensity normalisation ``(raw - offset) / scale``."""

    offset: float
    scale: float
    dtype: str = "uint16"

    def __post_init__(self) -> None:
        if not np.isfinite(self.offset) or not np.isfinite(self.scale) or self.scale <= 0:
            raise InputError(
                f"invalid normalisation offset={self.offset} scale={self.scale}: "
                "the image is constant or holds NaNs"
            )

    def forward(self, raw: np.ndarray) -> np.ndarray:
        return ((np.asarray(raw, dtype=np.float32) - self.offset) / self.scale).astype(np.float32)

    def inverse(self, norm: np.ndarray, clip: bool = True) -> np.ndarray:
        """Back to raw units, cast to :attr:`dtype` (clipped to its range) when ``clip``."""
        raw = np.asarray(norm, dtype=np.float32) * self.scale + self.offset
        if not clip:
            return raw
        dt = np.dtype(self.dtype)
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            return np.clip(np.rint(raw), info.min, info.max).astype(dt)
        return raw.astype(dt)

    def to_dict(self) -> dict[str, Any]:
        return {"offset": float(self.offset), "scale": float(self.scale), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalisation:
        return cls(float(d["offset"]), float(d["scale"]), str(d.get("dtype", "uint16")))

    @classmethod
    def estimate(
        cls,
        image: Any,
        labels: Any | None = None,
        *,
        max_frames: int = 10,
        low: float = 1.0,
        high: float = 99.9,
    ) -> Normalisation:
        """Estimate from up to ``max_frames`` evenly spaced frames of ``image`` (T, Y, X).

        With ``labels``, the offset is the ``low`` percentile of background pixels (label 0) and the
        top the ``high`` percentile of foreground pixels; without, both come from all pixels.

        Raises
        ------
        InputError
            For NaNs/infs, or a constant image.
        """
        t = image.shape[0]
        idx = np.unique(np.linspace(0, t - 1, min(t, max_frames)).round().astype(int))
        frames = np.stack([np.asarray(image[i]) for i in idx]).astype(np.float32)
        if not np.isfinite(frames).all():
            raise InputError("the image holds NaN or infinite values; clean or replace them first")
        if labels is not None:
            lab = np.stack([np.asarray(labels[i]) for i in idx]) > 0
            bg, fg = frames[~lab], frames[lab]
            if bg.size == 0 or fg.size == 0:
                bg = fg = frames.ravel()
        else:
            bg = fg = frames.ravel()
        offset = float(np.percentile(bg, low))
        top = float(np.percentile(fg, high))
        if top - offset <= 0:
            raise InputError("the image is constant (no contrast between background and cells)")
        return cls(offset=offset, scale=top - offset, dtype=np.dtype(image.dtype).name)
