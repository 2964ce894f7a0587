"""The one recipe: a :class:`~napari_bvdm.synthesis.config.GenerateConfig` in, synthetic videos out.

Three steps, the same for every front end (GUI, ``bvdm generate``, ``bvdm demo``, sample data,
``bvdm evaluate``):

1. :func:`prepare` loads or takes the ingredients: the mask source (shape model or label video), the
   texture painter, the flow model, the scene statistics and the halo of the real cells;
2. :func:`preview` streams one video into memory (GUI preview, sample data), or
3. :func:`generate` writes the configured videos as a validated CTC dataset with its ``synthesis.json``.

Both 2 and 3 are jobs: generators of :class:`~napari_bvdm.runtime.progress.Progress` (and
:class:`~napari_bvdm.synthesis.pipeline.SynthFrame`) events that return their result.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.video import InputError
from ..runtime.config import ConfigError
from ..runtime.progress import CancelToken, Job, Progress
from .config import CLASSICAL, UNSAVED, GenerateConfig

__all__ = ["Ingredients", "prepare", "preview", "start_video", "generate", "engine_config", "mask_source", "DEFAULTS",
           "build_painter", "scene_from_shape_model"]

DEFAULTS = Path(__file__).resolve().parents[1] / "defaults"

#: Memo = ``(name, compute, *key) -> value``: the GUI caches statistics of its real video with it.
Memo = Callable[..., Any]


def _no_memo(name: str, compute: Callable[[], Any], *key: Any) -> Any:
    return compute()


@dataclass
class Ingredients:
    """Everything a run needs besides its config; files name what was loaded (hashed into the record)."""

    painter: Any
    flow: Any
    scene: Any
    shape_model: Any = None
    labels: Any = None  # a MaskSet when the masks come from a label video
    halo: list[float] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)


def _bundled(path: str, name: str) -> Path:
    if path:
        return Path(path)
    p = DEFAULTS / name
    if not p.is_file():
        raise ConfigError(f"this installation bundles no {name}; give a model file")
    return p


def _device(cfg: GenerateConfig):
    from ..runtime.device import resolve_device

    return resolve_device(cfg.device)


def build_painter(cfg: GenerateConfig, texture_model: Any = None, *, crops: Any = None, profile: Any = None):
    """The texture painter the config asks for; returns ``(painter, weights file or None)``.

    ``texture_model`` (a loaded :class:`~napari_bvdm.texture.model.TextureModel`) is used instead of loading
    ``cfg.texture.model``; ``crops`` (real cell crops) give the classical renderer its statistics and
    ``profile`` overrides the texture model's own rim profile.
    """
    from ..texture.painter import ClassicalPainter, DiffusionPainter, DiffusionPainterConfig

    t = cfg.texture
    if t.model == CLASSICAL:
        if crops is not None:
            return ClassicalPainter.from_crops(crops, profile), None
        crop = getattr(texture_model, "crop_size", 96)
        return ClassicalPainter(normalisation=None, crop_size=crop, profile=profile), None
    path = None
    if texture_model is None:
        from ..texture.model import TextureModel

        path = _bundled(t.model, "texture.safetensors")
        texture_model = TextureModel.load(path, device="cpu" if cfg.device == "auto" else cfg.device)
    elif t.model and Path(t.model).is_file():
        path = Path(t.model)
    from ..runtime.device import resolve_precision

    pcfg = DiffusionPainterConfig(sampler=t.sampler, ddim_steps=t.passes, refresh_passes=t.refresh_passes,
                                  ddim_eta=0.5, tf0=t.first_strength,
                                  tf_non0=t.refresh_strength, precision=resolve_precision(t.precision, cfg.device),
                                  device=cfg.device)
    return DiffusionPainter(texture_model, sampler=t.sampler, config=pcfg, profile=profile), path


def scene_from_shape_model(shape_model: Any, painter: Any):
    """Scene statistics stored in a shape model: flat illumination, the fitted brightness spread."""
    from .background import SceneStats

    bq = np.asarray(shape_model.params["brightness"]["quantiles"], float)
    bright = (float(np.median(bq)), float((np.percentile(bq, 84) - np.percentile(bq, 16)) / 2))
    norm = shape_model.normalisation or painter.normalisation.to_dict()
    return SceneStats.from_shape_background(shape_model.params["background"], norm, bright)


def _real_video(cfg: GenerateConfig, real_video: Any):
    if real_video is not None or not cfg.scene.real:
        return real_video
    from ..io.readers import read_video

    video = read_video(cfg.scene.real, lazy=True)
    if video.image is None:
        raise InputError(f"{cfg.scene.real} holds no images to fit the background on")
    return video


def _scene(cfg: GenerateConfig, painter: Any, trained: bool, shape_model: Any, real: Any, memo: Memo):
    from .background import SceneStats, fit_scene_stats

    if cfg.scene.stats:
        return SceneStats.load(cfg.scene.stats)
    if real is not None and real.image is not None:
        main = real.dense_labels() or real.main_labels()
        norm = painter.normalisation if trained else None
        key = repr(norm.to_dict()) if norm is not None else "estimated"
        return memo("scene", lambda: fit_scene_stats(real.image, None if main is None else main[1], norm,
                                                     source=str(getattr(real, "source", cfg.scene.real))), key)
    if shape_model is not None:
        return scene_from_shape_model(shape_model, painter)
    raise ConfigError("with a label video, give a real video (scene.real) or saved scene statistics (scene.stats) "
                      "to take the background and brightness from")


def _halo(real: Any, memo: Memo) -> list[float]:
    """The real cells' halo (light just outside their outlines), measured when the real video has labels."""
    if real is None or not getattr(real, "labels", None):
        return []
    from ..texture.profile import halo_from_video

    try:
        return list(memo("halo", lambda: halo_from_video(real)))
    except InputError as e:
        warnings.warn(f"no halo around the cells: {e}", stacklevel=3)
        return []


def _masks_input(cfg: GenerateConfig, shape_model: Any):
    """``(shape_model, MaskSet or None, files)`` from the shapes section."""
    if cfg.shapes.labels:
        from ..flow.pairs import load_label_video
        from .export import MaskSet

        labels, lineage, kind = load_label_video(cfg.shapes.labels)
        files = {"labels": Path(cfg.shapes.labels)} if Path(cfg.shapes.labels).is_file() else {}
        return None, MaskSet(labels, lineage, info={"source": cfg.shapes.labels, "kind": kind}), files
    if shape_model is not None:
        given = Path(cfg.shapes.model) if cfg.shapes.model else None
        return shape_model, None, ({"shapes": given} if given is not None and given.is_file() else {})
    from ..shapes import ShapeModel

    path = _bundled(cfg.shapes.model, "shape_model.json")
    return ShapeModel.load(path), None, {"shapes": path}


def prepare(cfg: GenerateConfig, *, shape_model: Any = None, texture_model: Any = None, flow_model: Any = None,
            real_video: Any = None, scene: Any = None, crops: Any = None, profile: Any = None,
            memo: Memo | None = None) -> Ingredients:
    """Load what ``cfg`` names; objects given here (e.g. the GUI's models in memory) are used instead.

    ``real_video`` (an :class:`~napari_bvdm.io.video.Video`) replaces reading ``cfg.scene.real``; ``scene``
    replaces fitting the scene statistics; ``crops`` and ``profile`` go to :func:`build_painter`. Tunes the
    C allocator for painting (:func:`~napari_bvdm.runtime.memory.keep_freed_memory`).
    """
    from ..flow import FlowModel
    from ..runtime.memory import keep_freed_memory

    keep_freed_memory()

    memo = memo or _no_memo
    given = {"shapes": shape_model, "texture": texture_model, "flow": flow_model}
    unsaved = [k for k, obj in given.items() if obj is None and getattr(cfg, k).model == UNSAVED]
    if unsaved:
        raise ConfigError(f"the {' and '.join(unsaved)} model of this configuration was used from the GUI without "
                          "being saved; save it there and name its file")
    shape_model, labels, files = _masks_input(cfg, shape_model)
    painter, tex_file = build_painter(cfg, texture_model, crops=crops, profile=profile)
    if tex_file is not None:
        files["texture"] = tex_file
    if flow_model is None:
        fpath = _bundled(cfg.flow.model, "flow.safetensors")
        flow_model = FlowModel.load(fpath, device=_device(cfg))
        files["flow"] = fpath
    elif cfg.flow.model and Path(cfg.flow.model).is_file():
        files["flow"] = Path(cfg.flow.model)
    real = _real_video(cfg, real_video)
    trained = cfg.texture.model != CLASSICAL
    if scene is None:
        scene = _scene(cfg, painter, trained, shape_model, real, memo)
    if not trained and crops is None:  # the classical renderer has no units of its own: the scene's
        painter.normalisation = scene.norm
    inputs = {"real": str(cfg.scene.real)} if cfg.scene.real else {}
    return Ingredients(painter, flow_model, scene, shape_model, labels, _halo(real, memo), files, inputs)


def engine_config(cfg: GenerateConfig, halo: list[float] | None = None):
    """The frame-by-frame engine's settings (:class:`~napari_bvdm.synthesis.pipeline.SynthesisConfig`)."""
    from .pipeline import SynthesisConfig

    return SynthesisConfig(tf0=cfg.texture.first_strength, tf_non0=cfg.texture.refresh_strength, seed=cfg.seed,
                           halo=list(halo or []))


def mask_source(cfg: GenerateConfig, ing: Ingredients, cancel: CancelToken | None = None, *,
                keep_frames: bool = True):
    """``(number, seed) -> Job[MaskVideo]``: the simulation of one video; or the fixed label video.

    ``keep_frames=False``: the simulated frames are made again when read
    (:class:`~napari_bvdm.shapes.simulate.SimulatedLabels`), so memory does not grow with the video's length.
    """
    if ing.labels is not None:
        return ing.labels
    from ..shapes import SimulationConfig, simulate_masks
    from ..shapes.simulate import check_cells_fit

    s = cfg.shapes
    base = SimulationConfig(frames=s.frames, height=s.height, width=s.width, cells=s.cells,
                            density_scale=s.crowding if s.cells is None else 1.0, divisions=s.divisions,
                            outlines=s.outlines)
    check_cells_fit(ing.shape_model, base)  # before any video is started

    def masks(number: int, seed: int):
        return simulate_masks(ing.shape_model, base.replace(seed=seed), keep_frames=keep_frames, cancel=cancel)

    return masks


def preview(cfg: GenerateConfig, ing: Ingredients, *, frames: int | None = None, number: int = 1,
            cancel: CancelToken | None = None) -> Job[dict[str, Any]]:
    """Job: video ``number`` of the config (or its first ``frames``); yields Progress and SynthFrame.

    Returns ``{"masks", "info", "scene", "config"}``; the frames themselves are yielded, not kept.
    """
    from .export import video_seed
    from .pipeline import generate_video

    if frames is not None:
        cfg = cfg.with_updates({"shapes.frames": int(frames)})
    seed = video_seed(cfg.seed, number)
    n = cfg.shapes.frames
    yield Progress(0, n, "simulating masks", stage="generate")
    src = mask_source(cfg, ing, cancel)
    masks = (yield from src(number, seed)) if callable(src) else src
    info = yield from generate_video(masks.labels, ing.painter, ing.flow, ing.scene,
                                     engine_config(cfg.with_updates({"seed": seed}), ing.halo),
                                     lineage=masks.lineage, brightness=masks.brightness, cancel=cancel)
    return {"masks": masks, "info": info, "scene": ing.scene, "config": cfg}


def start_video(cfg: GenerateConfig, ing: Ingredients, *, number: int = 1,
                cancel: CancelToken | None = None) -> Job[Any]:
    """Job: a :class:`~napari_bvdm.synthesis.draft.VideoDraft` of video ``number``: its masks simulated and
    checked, no frame painted yet. ``draft.run(k)`` paints the first ``k`` frames (a preview); :func:`generate`
    with ``drafts={number: draft}`` writes it, painting only the frames it lacks. The frames are exactly
    those :func:`generate` makes without a draft."""
    from .export import MaskSet, _as_maskset, new_draft, video_seed

    seed = video_seed(cfg.seed, number)
    yield Progress(0, cfg.shapes.frames, "simulating masks", stage="generate")
    src = mask_source(cfg, ing, cancel)
    masks = (yield from src(number, seed)) if callable(src) else src
    ms: MaskSet = _as_maskset(masks)
    return new_draft(f"{number:02d}", ms, ing.painter, ing.flow, ing.scene,
                     engine_config(cfg, ing.halo).replace(seed=seed))


def generate(cfg: GenerateConfig, out_dir: str | Path, ing: Ingredients | None = None, *,
             overwrite: bool = False, resume: bool = False, source: str = "generate",
             cancel: CancelToken | None = None, drafts: dict[int, Any] | None = None) -> Job[Path]:
    """Job: write the configured videos into the CTC dataset ``out_dir`` (validated on write); returns it.

    ``source`` names the front end in the record (``generate`` records can be replayed with
    ``bvdm generate --config``); with ``resume`` the videos the dataset already holds with these settings
    are kept and only the missing ones are made; ``drafts`` (see :func:`start_video`) are videos already
    (partly) made with this config.
    """
    from .export import export_dataset

    ing = ing or prepare(cfg)
    record = {"config": resolved(cfg).to_dict(), "source": source, "inputs": ing.inputs}
    masks = mask_source(cfg, ing, cancel, keep_frames=False)  # frames made again when read: memory flat in length
    return (yield from export_dataset(out_dir, masks, ing.painter, ing.flow, ing.scene,
                                      engine_config(cfg, ing.halo), n_videos=cfg.output.videos,
                                      first_video=cfg.output.first_video, model_files=ing.files, record=record,
                                      overwrite=overwrite, resume=resume, cancel=cancel,
                                      pixel_size=pixel_size(cfg, ing), drafts=drafts))


def resolved(cfg: GenerateConfig) -> GenerateConfig:
    """The config with ``texture.precision = "auto"`` replaced by the precision this machine uses, as the
    dataset's record keeps it (so the record remakes the same videos elsewhere)."""
    from ..runtime.device import resolve_precision

    if cfg.texture.precision != "auto" or cfg.texture.model == CLASSICAL:
        return cfg
    return cfg.with_updates({"texture.precision": resolve_precision("auto", cfg.device)})


def pixel_size(cfg: GenerateConfig, ing: Ingredients) -> float | None:
    """Micrometres per pixel of the synthetic videos: the configured one, else the shape model's source."""
    if cfg.output.pixel_size:
        return float(cfg.output.pixel_size)
    source = getattr(ing.shape_model, "source", None) or {}
    value = source.get("pixel_size")
    return float(value) if value else None
