"""Qt-free: turn the workflow state + Generate parameters into core synthesis jobs.

Shared by the Generate step (preview, streaming full video) and the Export step (N videos to a CTC
dataset), so both produce exactly the same videos for the same seed.
"""

from __future__ import annotations

import weakref
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..runtime.progress import CancelToken, Progress
from ..texture import generation

__all__ = [
    "GenerateParams", "missing_for_generation", "build_painter", "scene_for", "scene_from_shape_model",
    "generate_job", "export_job", "synthesis_config", "derived",
]


@dataclass
class GenerateParams:
    """Generate-step parameters (defaults follow the method; the painter's come from the texture model)."""

    frames: int = 20
    height: int = 256
    width: int = 256
    cells: int | None = None  # None = fitted density
    density_scale: float = 1.0  # with cells auto: factor on the fitted density (> 1: more crowded, more contacts)
    divisions: bool = True
    outlines: Literal["model", "real"] = "model"  # real: the shape model's stored real outlines
    seed: int = 0
    painter: Literal["diffusion", "classical"] = "diffusion"  # classical: instant, no learning
    sampler: Literal["ddim", "ddpm"] = generation.SAMPLER  # the `bvdm generate` painter (texture/generation.py)
    ddim_steps: int = generation.DDIM_STEPS
    ddim_eta: float = generation.DDIM_ETA
    tf0: int = 200
    tf_non0: int = 100  # the pipeline's measured refresh (SynthesisConfig), not the reference's 10
    rim_profile: bool = True  # hold cells to the real rim profile when the texture model carries one
    rim_distribution: bool = False  # and to the real cells' dim and bright parts (models trained since stop 18)
    halo: bool = False  # hold frames to the real cells' halo (measured on the loaded real video's labels)
    faint_cells: bool = False  # draw the faint blobs the real labels leave out (out-of-focus cells), unlabelled
    preview_frames: int = 3
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, *, strict: bool = False) -> GenerateParams:
        from ..runtime.config import ConfigError

        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown and strict:
            raise ConfigError(f"GenerateParams: unknown setting(s) {unknown}")
        p = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "extra"})
        p.check()
        return p

    def check(self) -> None:
        from ..runtime.config import ConfigError

        for name, ok, why in (
            ("frames", self.frames >= 1, "must be >= 1"),
            ("height", 16 <= self.height <= 16384, "must be in 16..16384"),
            ("width", 16 <= self.width <= 16384, "must be in 16..16384"),
            ("cells", self.cells is None or self.cells >= 0, "must be >= 0 or auto"),
            ("density_scale", 0 < self.density_scale <= 10, "must be in (0, 10]"),
            ("painter", self.painter in ("diffusion", "classical"), "must be diffusion or classical"),
            ("outlines", self.outlines in ("model", "real"), "must be model or real"),
            ("sampler", self.sampler in ("ddim", "ddpm"), "must be ddim or ddpm"),
            ("ddim_steps", self.ddim_steps >= 1, "must be >= 1"),
            ("ddim_eta", 0 <= self.ddim_eta <= 1, "must be in [0, 1]"),
            ("tf0", 1 <= self.tf0 <= 1000, "must be in 1..1000"),
            ("tf_non0", 1 <= self.tf_non0 <= 1000, "must be in 1..1000"),
            ("preview_frames", self.preview_frames >= 1, "must be >= 1"),
        ):
            if not ok:
                raise ConfigError(f"GenerateParams.{name} = {getattr(self, name)!r}: {why}")


def missing_for_generation(state: Any, params: GenerateParams) -> list[str]:
    """What the workflow still lacks for these parameters (empty = ready)."""
    out = []
    if state.shape_model is None:
        out.append("a shape model (step 2)")
    if params.painter == "diffusion" and state.texture_model is None:
        out.append("a texture model (step 3) or the classical painter")
    if state.flow_model is None:
        out.append("a flow model (step 4)")
    return out


def _labels_stamp(video: Any) -> tuple:
    """A cheap fingerprint of the video's labels: napari edits label layers in place (painting)."""
    stamp: list[Any] = [tuple(video.seg_frames)]
    for kind, arr in sorted(video.labels.items()):
        if isinstance(arr, np.ndarray):
            stamp.append((kind, arr.shape, zlib.crc32(np.ascontiguousarray(arr).view(np.uint8).reshape(-1))))
        else:  # lazy arrays are read-only
            stamp.append((kind, id(arr)))
    return tuple(stamp)


def derived(state: Any, name: str, compute: Callable[[], Any], *key: Any) -> Any:
    """``compute()``, a statistic of the real video, cached on ``state`` until the video or its labels change.

    The halo (seconds on a CTC sequence), the scene statistics and the classical painter's crops are
    computed once per video instead of on every preview; a new video, or labels painted in napari, start
    afresh.
    """
    video = getattr(state, "video", None)
    extras = getattr(state, "extras", None)
    if video is None or not isinstance(extras, dict):
        return compute()
    stamp = _labels_stamp(video)
    cache = extras.get("derived")
    if cache is None or cache[0]() is not video or cache[1] != stamp:
        cache = extras["derived"] = (weakref.ref(video), stamp, {})
    k = (name, *key)
    if k not in cache[2]:
        cache[2][k] = compute()
    return cache[2][k]


def _real_arrays(video: Any) -> tuple[Any, Any]:
    if video is None or video.image is None:
        return None, None
    dense = video.dense_labels()
    return np.asarray(video.image), None if dense is None else np.asarray(dense[1])


def build_painter(state: Any, params: GenerateParams):
    """The texture painter: DiffusionPainter on the texture model, or a ClassicalPainter."""
    from ..texture.painter import ClassicalPainter, DiffusionPainter

    if params.painter == "diffusion":
        model = state.texture_model
        if model is None:
            raise ValueError("no texture model: train or load one in step 3, or pick the classical painter")
        return DiffusionPainter(model, params.sampler, ddim_steps=params.ddim_steps, ddim_eta=params.ddim_eta,
                                tf0=params.tf0, tf_non0=params.tf_non0, rim_profile=params.rim_profile,
                                rim_distribution=params.rim_distribution, device=state.device)
    image, labels = _real_arrays(state.video)
    crop = state.texture_model.crop_size if state.texture_model is not None else 96
    if image is not None and labels is not None:
        from ..texture.crops import extract_crops

        crops = derived(state, "crops", lambda: extract_crops(image, labels, crop_size=crop), crop)
        return ClassicalPainter.from_crops(crops)
    norm = state.texture_model.normalisation if state.texture_model is not None else None
    return ClassicalPainter(normalisation=norm, crop_size=crop)


def scene_for(state: Any, painter: Any):
    """Background statistics: fitted on the real video (painter's units), else the shape model's background."""
    from ..synthesis import fit_scene_stats

    image, labels = _real_arrays(state.video)
    if image is not None:
        norm = getattr(painter, "normalisation", None)
        key = repr(norm.to_dict()) if hasattr(norm, "to_dict") else repr(norm)
        return derived(state, "scene", lambda: fit_scene_stats(image, labels, norm,
                                                               source=getattr(state.video, "source", "")), key)
    if state.shape_model is None:
        raise ValueError("no real video and no shape model to take the background statistics from")
    return scene_from_shape_model(state.shape_model, painter)


def scene_from_shape_model(shape_model: Any, painter: Any):
    """Scene statistics stored in a shape model (as ``bvdm generate`` does without ``--real``)."""
    from ..synthesis import SceneStats

    bq = np.asarray(shape_model.params["brightness"]["quantiles"], float)
    bright = (float(np.median(bq)), float((np.percentile(bq, 84) - np.percentile(bq, 16)) / 2))
    norm = shape_model.normalisation or painter.normalisation.to_dict()
    return SceneStats.from_shape_background(shape_model.params["background"], norm, bright)


def _simulation_config(params: GenerateParams, frames: int, seed: int):
    from ..shapes import SimulationConfig

    return SimulationConfig(frames=frames, height=params.height, width=params.width, cells=params.cells,
                            density_scale=params.density_scale if params.cells is None else 1.0,
                            divisions=params.divisions, outlines=params.outlines, seed=seed)


def synthesis_config(params: GenerateParams, seed: int, state: Any = None):
    """The scene's :class:`SynthesisConfig`; with ``params.halo`` the halo is measured on ``state.video``."""
    from ..synthesis import SynthesisConfig

    halo: list[float] = []
    if params.halo:
        video = getattr(state, "video", None)
        if video is None:
            raise ValueError("the halo is measured on the real cells: load a real video with labels first")
        from ..texture.profile import halo_from_video

        halo = derived(state, "halo", lambda: halo_from_video(video))
    return SynthesisConfig(tf0=params.tf0, tf_non0=params.tf_non0, seed=seed, halo=halo,
                           faint_cells=params.faint_cells)


def generate_job(state: Any, params: GenerateParams, *, frames: int | None = None,
                 cancel: CancelToken | None = None):
    """Job: simulate masks, paint and warp them; yields Progress and SynthFrame, returns the masks + info."""
    from ..shapes import simulate_masks
    from ..synthesis import generate_video

    n = int(frames or params.frames)
    yield Progress(0, n, "simulating masks", stage="generate")
    masks = yield from simulate_masks(state.shape_model, _simulation_config(params, n, params.seed), cancel=cancel)
    yield Progress(0, n, "preparing painter and background", stage="generate")
    painter = build_painter(state, params)
    scene = scene_for(state, painter)
    info = yield from generate_video(masks.labels, painter, state.flow_model, scene,
                                     synthesis_config(params, params.seed, state), lineage=masks.lineage,
                                     brightness=masks.brightness, cancel=cancel)
    return {"masks": masks, "info": info, "scene": scene, "params": params.to_dict()}


def export_job(state: Any, params: GenerateParams, out_dir: str, n_videos: int, *, overwrite: bool = False,
               cancel: CancelToken | None = None):
    """Job: write ``n_videos`` synthetic videos as a CTC dataset (validated on write); returns its folder."""
    from ..shapes import simulate_masks
    from ..synthesis.export import export_dataset

    yield Progress(0, n_videos, "preparing painter and background", stage="export")
    painter = build_painter(state, params)
    scene = scene_for(state, painter)

    def masks(number: int, seed: int):
        return simulate_masks(state.shape_model, _simulation_config(params, params.frames, seed), cancel=cancel)

    files = {"shape_model": state.shape_path, "texture_model": state.texture_path, "flow_model": state.flow_path}
    files = {k: v for k, v in files.items() if v and v != "bundled default" and _is_file(v)}
    return (yield from export_dataset(out_dir, masks, painter, state.flow_model, scene,
                                      synthesis_config(params, params.seed, state), n_videos=n_videos,
                                      model_files=files, parameters={"gui": params.to_dict()},
                                      overwrite=overwrite, cancel=cancel))


def _is_file(p: str) -> bool:
    from pathlib import Path

    return Path(p).is_file()
