"""A synthetic video made frame by frame and kept, so that what was previewed is never made twice.

A :class:`VideoDraft` holds the checked masks of one video and the suspended frame generator of
:func:`~napari_bvdm.synthesis.pipeline.generate_video`. :meth:`VideoDraft.run` makes frames up to a count,
replaying the frames already made first: a preview of 3 frames, then the whole video, then its export
paint each frame once, and the result is the same as one uninterrupted run (the same generator).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from ..runtime.progress import Cancelled, CancelToken, Progress
from .pipeline import SynthesisConfig, SynthFrame, generate_video

__all__ = ["VideoDraft"]


class _Relay(CancelToken):
    """The cancel token of whichever job is driving the draft now."""

    def __init__(self) -> None:
        super().__init__()
        self.current: CancelToken | None = None

    @property
    def cancelled(self) -> bool:
        return self.current is not None and self.current.cancelled

    def check(self) -> None:
        if self.current is not None:
            self.current.check()


class VideoDraft:
    """One video's masks and the frames painted so far.

    Parameters
    ----------
    labels, lineage : checked masks (see :func:`~napari_bvdm.synthesis.pipeline.prepare_labels`).
    brightness, info : the mask simulation's per-track brightness and description.
    painter, flow, scene, config : the engine's ingredients and settings (``config.seed``: the video's seed).
    keep : keep the frames made, to give them again to a later run (``False``: for a single run that hands
        each frame on, e.g. an export writing the video as it is made; memory stays that of one frame).
    """

    def __init__(self, labels: Any, lineage: np.ndarray, painter: Any, flow: Any, scene: Any,
                 config: SynthesisConfig, *, brightness: dict | None = None, info: dict | None = None,
                 keep: bool = True) -> None:
        self.labels, self.lineage, self.brightness = labels, lineage, brightness
        self.info = dict(info or {})
        self.keep = keep
        self._made = 0  # frames made by the current generator
        self._engine = (painter, flow, scene, config)
        self.frames: list[SynthFrame] = []
        self.result: dict[str, Any] | None = None  # generate_video's summary, once every frame is made
        self._gen: Generator | None = None
        self._relay = _Relay()

    @property
    def n_frames(self) -> int:
        return int(self.labels.shape[0])

    @property
    def complete(self) -> bool:
        return self.result is not None

    def run(self, upto: int | None = None, cancel: CancelToken | None = None
            ) -> Generator[Progress | SynthFrame, None, VideoDraft]:
        """Job: yield frames ``0 .. upto-1`` (all by default), the ones made earlier first; returns the draft.

        A cancelled or failed run drops the unfinished generator (and the frames of this draft), so the
        next run starts the video afresh.
        """
        n = self.n_frames if upto is None else min(int(upto), self.n_frames)
        for frame in self.frames[:n]:
            yield frame
            yield Progress(frame.t + 1, self.n_frames, f"frame {frame.t + 1}/{self.n_frames} (made earlier)",
                           stage="generate")
        self._relay.current = cancel
        try:
            while self._made < n or (n == self.n_frames and self.result is None):
                if self._gen is None:
                    painter, flow, scene, cfg = self._engine
                    self._gen = generate_video(self.labels, painter, flow, scene, cfg, lineage=self.lineage,
                                               brightness=self.brightness, video_index=0, cancel=self._relay)
                try:
                    ev = next(self._gen)
                except StopIteration as stop:
                    self.result = stop.value
                    self._gen = None
                    break
                if isinstance(ev, SynthFrame):
                    self._made += 1
                    if self.keep:
                        self.frames.append(ev)
                yield ev
        except (Cancelled, Exception):
            self._gen, self.frames, self._made = None, [], 0
            raise
        finally:
            self._relay.current = None
        return self
