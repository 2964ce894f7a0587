"""The one data structure that passes between stages: a video with its annotations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Video", "Lineage", "InputError"]


class InputError(ValueError):
    """Bad input: the message names the file, the problem, and what to do instead."""


# A lineage table is an (N, 4) int64 array of CTC rows ``L B E P`` sorted by L.
Lineage = np.ndarray


@dataclass
class Video:
    """An image video with optional label videos and lineage.

    Attributes
    ----------
    image : array-like (T, Y, X) or None
        Raw frames; may be a lazy array (``dask`` / memory map) of uint8, uint16 or float.
    labels : dict[str, array-like (T, Y, X)]
        Label videos by kind: ``"TRA"`` (track ids, every frame), ``"SEG"`` (full masks; frames
        without annotation are all zero, see ``seg_frames``), ``"ST"``, ``"ERR_SEG"``, or ``"labels"``
        for a plain label video.
    lineage : (N, 4) int64 array or None
        CTC track table ``L B E P`` belonging to ``labels["TRA"]`` (or the main label video).
    seg_frames : list[int]
        Frames that carry SEG annotation (sparse SEG).
    source : str
        Where it came from (path), for provenance.
    meta : dict
        Anything else (dtype info, pixel size, ...).
    """

    image: Any | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    lineage: np.ndarray | None = None
    seg_frames: list[int] = field(default_factory=list)
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        arr = self.image if self.image is not None else next(iter(self.labels.values()), None)
        if arr is None:
            raise InputError("empty video: no image and no labels")
        return tuple(int(s) for s in arr.shape)  # type: ignore[return-value]

    @property
    def n_frames(self) -> int:
        return self.shape[0]

    def main_labels(self) -> tuple[str, Any] | None:
        """The best label video for tracking statistics: TRA, then labels, then ST/SEG/ERR_SEG."""
        for key in ("TRA", "labels", "ST", "ERR_SEG", "SEG"):
            if key in self.labels:
                return key, self.labels[key]
        return None

    def dense_labels(self) -> tuple[str, Any] | None:
        """The best *full-mask* label video: ST, SEG when dense, TRA, labels, ERR_SEG."""
        for key in ("ST", "labels", "TRA", "ERR_SEG"):
            if key in self.labels:
                if key == "TRA" and "SEG" in self.labels and len(self.seg_frames) == self.n_frames:
                    return "SEG", self.labels["SEG"]
                return key, self.labels[key]
        if "SEG" in self.labels:
            return "SEG", self.labels["SEG"]
        return None

    def describe(self) -> str:
        """Human-readable summary (used by ``bvdm inspect`` and the GUI's data step)."""
        lines = [f"source: {self.source or '(in memory)'}"]
        if self.image is not None:
            t, y, x = self.shape
            lines.append(f"image: {t} frames, {y} x {x}, dtype {np.dtype(self.image.dtype).name}")
        for k, v in self.labels.items():
            extra = ""
            if k == "SEG" and self.seg_frames:
                extra = f", annotated frames {len(self.seg_frames)}: {self.seg_frames[:8]}" + (
                    "..." if len(self.seg_frames) > 8 else ""
                )
            lines.append(f"labels {k}: shape {tuple(v.shape)}{extra}")
        if self.lineage is not None:
            lin = np.asarray(self.lineage)
            n_div = len(np.unique(lin[lin[:, 3] > 0, 3])) if len(lin) else 0
            lines.append(f"tracks: {len(lin)}, with parent: {int((lin[:, 3] > 0).sum()) if len(lin) else 0}, "
                         f"dividing mothers: {n_div}")
        return "\n".join(lines)

    def frames(self, start: int, stop: int) -> Video:
        """Frames ``start..stop-1`` as a new Video (lineage clipped, frame numbers from 0).

        Arrays are sliced (lazy arrays are read for just these frames); ``seg_frames`` and
        ``meta["st_frames"]`` are shifted; tracks are cut to the window and a parent link is
        kept when the parent is in the window.
        """
        from .lineage import clip_lineage

        n = self.n_frames
        start, stop = max(0, int(start)), min(n, int(stop))
        if start >= stop:
            raise InputError(f"empty frame range {start}..{stop} of a {n}-frame video")
        meta = dict(self.meta)
        meta["frame_offset"] = int(self.meta.get("frame_offset", 0)) + start
        if "st_frames" in meta:
            meta["st_frames"] = [t - start for t in meta["st_frames"] if start <= t < stop]
        if "res_lineage" in meta:
            meta["res_lineage"] = clip_lineage(meta["res_lineage"], start, stop)
        return Video(
            image=None if self.image is None else self.image[start:stop],
            labels={k: v[start:stop] for k, v in self.labels.items()},
            lineage=None if self.lineage is None else clip_lineage(self.lineage, start, stop),
            seg_frames=[t - start for t in self.seg_frames if start <= t < stop],
            source=self.source,
            meta=meta,
        )

    def with_source(self, path: str | Path) -> Video:
        self.source = str(path)
        return self
