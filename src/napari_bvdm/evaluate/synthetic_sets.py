"""Make the synthetic training sets of the evaluation from the *training part* of a real sequence.

Only frames ``0 .. cut-1`` of the real sequence are seen: the shape/motion model, the scene
statistics, the cell crops (classical painter statistics, texture-model training) and the flow
model all come from them, so the held-out test frames never reach the generator. Two datasets are
written with the same simulated mask videos (same seeds), so they differ only in texture:

- ``synthetic``: the diffusion painter (our method) with a given or briefly trained texture model;
- ``classical``: the classical, model-free renderer (baseline).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..io.video import InputError
from ..runtime.config import Config
from ..runtime.progress import CancelToken, Job, Progress
from ..synthesis.config import CLASSICAL, GenerateConfig

__all__ = ["SyntheticSetsConfig", "TextureTraining", "FlowTraining", "make_synthetic_sets"]


@dataclass
class TextureTraining(Config):
    """The texture model trained on the training part when none is given (the bundled model's recipe).

    steps : training steps; max_minutes : stop after this many minutes (0 = no limit; the weights record the
    steps reached); width / batch_size : UNet width and batch (8 keeps a CPU run short); crop_size : side of
    the cell crops (a multiple of 8; 96 fits MSC at 1/2 scale and GOWT1 at full scale, MSC at full scale needs
    about 192); mask_channel, t_max, ema_decay : mask channel, t < 400, EMA 0.995 (docs/texture.md);
    precision : ``auto`` (fp32 on a CPU), ``fp32`` or ``bf16``.
    """

    steps: int = 2000
    max_minutes: float = 0.0
    width: int = 8
    batch_size: int = 8
    crop_size: int = 96
    mask_channel: bool = True
    t_max: int = 400
    ema_decay: float = 0.995
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    def check(self) -> None:
        self._require(self.steps >= 1, "steps", "must be >= 1")
        self._require(0 <= self.max_minutes < 1e6, "max_minutes", "must be >= 0 (0 = no limit)")
        self._require(1 <= self.width <= 256, "width", "must be in 1..256")
        self._require(self.batch_size >= 1, "batch_size", "must be >= 1")
        self._require(32 <= self.crop_size <= 512 and self.crop_size % 8 == 0, "crop_size",
                      "must be a multiple of 8 in 32..512")
        self._require(1 <= self.t_max <= 1000, "t_max", "must be in 1..1000")


@dataclass
class FlowTraining(Config):
    """The flow model trained on the training part when none is given: steps and batch size."""

    steps: int = 300
    batch_size: int = 8

    def check(self) -> None:
        self._require(self.steps >= 1, "steps", "must be >= 1")
        self._require(self.batch_size >= 1, "batch_size", "must be >= 1")


@dataclass
class SyntheticSetsConfig(Config):
    """How the evaluation's synthetic training sets are made (recorded next to them).

    Attributes
    ----------
    frames : frames per video (0 = as many as the training part).
    downsample : generate at ``1/downsample`` of the real scale (for cells too large for 96-px crops,
        e.g. MSC: 2); the evaluation then needs ``synthetic_downsample = downsample_eval / downsample``.
    synthesis : the recipe's settings (:class:`~napari_bvdm.synthesis.config.GenerateConfig`): seed, device,
        videos per set (``output.videos``), outlines, crowding, sampler...; the frame size, shape model, scene
        and halo come from the training part.
    texture_training, flow_training : the models trained when none is given.
    """

    frames: int = 0
    downsample: int = 1
    synthesis: GenerateConfig = field(default_factory=GenerateConfig)
    texture_training: TextureTraining = field(default_factory=TextureTraining)
    flow_training: FlowTraining = field(default_factory=FlowTraining)

    def check(self) -> None:
        self._require(self.frames >= 0, "frames", "must be >= 0 (0 = length of the training part)")
        self._require(1 <= self.downsample <= 8, "downsample", "must be in 1..8")


def _downsample_video(video, factor: int) -> None:
    """Shrink a training video in place: block-mean image (same dtype), centre-sampled labels, valid lineage."""
    from .data import downsample_image, downsample_labels, relabel_tracks

    dtype = video.image.dtype
    img = downsample_image(video.image, factor)
    if np.issubdtype(dtype, np.integer):
        img = np.clip(np.rint(img), np.iinfo(dtype).min, np.iinfo(dtype).max)
    video.image = img.astype(dtype)
    labels = {k: downsample_labels(v, factor).astype(np.uint16) for k, v in video.labels.items()}
    if "TRA" in labels:
        labels["TRA"], video.lineage = relabel_tracks(labels["TRA"], video.lineage)
    video.labels = labels


def make_synthetic_sets(
    real: str | Path,
    out_dir: str | Path,
    config: SyntheticSetsConfig | None = None,
    *,
    split: float = 0.5,
    max_frames: int = 0,
    texture_model: str | Path | None = None,
    flow_model: str | Path | None = None,
    sets: tuple[str, ...] = ("synthetic", "classical"),
    cancel: CancelToken | None = None,
) -> Job[dict[str, Path]]:
    """Job: write ``out_dir/synthetic`` and/or ``out_dir/classical`` CTC datasets; returns name -> path.

    Parameters
    ----------
    real : the real CTC sequence (``DS/01``); only the first ``split`` fraction of its first
        ``max_frames`` frames (0 = all) is used, the same training part as the experiment's.
    texture_model, flow_model : weights files; trained on the training part (briefly) when ``None``.
    """
    from ..shapes.fit import fit_shape_model
    from ..shapes.model import MAX_OUTLINES, FitConfig
    from ..synthesis import recipe
    from ..synthesis.background import fit_scene_stats
    from ..texture.crops import extract_crops

    cfg = config or SyntheticSetsConfig()
    bad = sorted(set(sets) - {"synthetic", "classical"})
    if bad:
        raise InputError(f"unknown synthetic set(s) {bad}; use synthetic and/or classical")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    yield Progress(0, 5, "reading the training part of the real sequence", stage="make-synthetic")
    video = _training_part(real, split, max_frames, cfg.downsample)
    _, height, width = video.shape
    gen = cfg.synthesis.with_updates({"shapes.frames": cfg.frames or video.n_frames, "shapes.height": height,
                                      "shapes.width": width, "scene.real": str(real)})
    yield Progress(1, 5, "fitting the shape and motion model", stage="make-synthetic")
    fit_cfg = FitConfig(keep_outlines=MAX_OUTLINES if gen.shapes.outlines == "real" else 0)
    shape_model = yield from fit_shape_model(video, fit_cfg, cancel=cancel)
    shape_model.save(out / "shape_model.json")
    scene = fit_scene_stats(video.image, video.labels.get("TRA"), source=str(real))
    crops = extract_crops(video.image, video.labels.get("SEG", video.labels.get("TRA")), tracks=video.labels.get("TRA"),
                          frames=video.seg_frames if "SEG" in video.labels else None, normalisation=scene.norm,
                          crop_size=cfg.texture_training.crop_size)
    profile = _profile(crops)  # the same for both painters (a loaded texture model's own may come from other data)
    yield Progress(2, 5, "flow model", stage="make-synthetic")
    flow, flow_path = yield from _flow(video, out, cfg, flow_model, cancel)
    written: dict[str, Path] = {}
    models = {"shapes": out / "shape_model.json", "flow": flow_path}
    if "synthetic" in sets:
        yield Progress(3, 5, "texture model", stage="make-synthetic")
        tex, tex_path = yield from _texture(crops, out, cfg, texture_model, cancel)
        ing = recipe.prepare(gen, shape_model=shape_model, texture_model=tex, flow_model=flow, real_video=video,
                             scene=scene, profile=profile)
        ing.files = {**models, "texture": tex_path}
        written["synthetic"] = yield from recipe.generate(gen, out / "synthetic", ing, overwrite=True,
                                                          source="evaluate", cancel=cancel)
    if "classical" in sets:
        yield Progress(4, 5, "classical renderer", stage="make-synthetic")
        gc = gen.with_updates({"texture.model": CLASSICAL})
        ing = recipe.prepare(gc, shape_model=shape_model, flow_model=flow, real_video=video, scene=scene,
                             crops=crops, profile=profile)
        ing.files = dict(models)
        written["classical"] = yield from recipe.generate(gc, out / "classical", ing, overwrite=True,
                                                          source="evaluate", cancel=cancel)
    cfg.save(out / "synthetic_sets.json")
    yield Progress(5, 5, "synthetic training sets written", stage="make-synthetic")
    return written


def _training_part(real: str | Path, split: float, max_frames: int, downsample: int):
    """The first ``split`` of the real sequence (its first ``max_frames``), in memory, downsampled."""
    from ..io.readers import read_video
    from .data import split_frames

    full = read_video(real, lazy=True, check=False)
    n_real = min(max_frames, full.n_frames) if max_frames else full.n_frames
    train_range, _ = split_frames(n_real, split)
    video = full.frames(0, train_range.stop)
    video.image = np.asarray(video.image)
    video.labels = {k: np.asarray(v) for k, v in video.labels.items()}
    if downsample > 1:
        _downsample_video(video, downsample)
    return video


def _profile(crops):
    from ..texture.profile import RimProfile

    try:
        return RimProfile.from_crops(crops)
    except InputError as e:
        warnings.warn(f"no rim profile, painting from flat silhouettes: {e}", stacklevel=3)
        return None


def _flow(video, out: Path, cfg: SyntheticSetsConfig, flow_model: str | Path | None, cancel):
    from ..flow.model import FlowModel
    from ..flow.train import FlowTrainConfig, train_flow

    if flow_model:
        return FlowModel.load(flow_model), Path(flow_model)
    path = out / "flow.safetensors"
    ft = cfg.flow_training
    flow = yield from train_flow(video.labels["TRA"], path,
                                 FlowTrainConfig(steps=ft.steps, batch_size=ft.batch_size,
                                                 device=cfg.synthesis.device, seed=cfg.synthesis.seed),
                                 cancel=cancel, resume=False)
    return flow, path


def _texture(crops, out: Path, cfg: SyntheticSetsConfig, texture_model: str | Path | None, cancel):
    from ..texture.model import TextureModel, TextureModelConfig
    from ..texture.train import TrainConfig as TextureTrainConfig
    from ..texture.train import train_texture
    from ..texture.unet import UNetConfig

    if texture_model:
        return TextureModel.load(texture_model), Path(texture_model)
    path = out / "texture.safetensors"
    tt = cfg.texture_training
    mcfg = TextureModelConfig(unet=UNetConfig(width=tt.width, mask_channel=tt.mask_channel), crop_size=crops.crop_size)
    tcfg = TextureTrainConfig(steps=tt.steps, batch_size=tt.batch_size, device=cfg.synthesis.device,
                              seed=cfg.synthesis.seed, t_max=tt.t_max, ema_decay=tt.ema_decay, precision=tt.precision,
                              max_seconds=60 * tt.max_minutes)
    tex = yield from train_texture(crops, mcfg, tcfg, cancel=cancel)
    tex.save(path)
    return tex, path
