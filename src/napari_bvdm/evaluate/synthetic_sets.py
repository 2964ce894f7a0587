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
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..io.video import InputError
from ..runtime.config import Config
from ..runtime.progress import CancelToken, Job, Progress
from ..texture import generation

__all__ = ["SyntheticSetsConfig", "make_synthetic_sets"]


@dataclass
class SyntheticSetsConfig(Config):
    """How the synthetic training sets are made (recorded next to them).

    Attributes
    ----------
    videos : synthetic videos per set.
    frames : frames per video (0 = as many as the training part).
    downsample : generate at ``1/downsample`` of the real scale (for cells too large for 96-px crops,
        e.g. MSC: 2); the evaluation then needs ``synthetic_downsample = downsample_eval / downsample``.
    seed : base seed of mask simulation and synthesis.
    texture_steps : texture-model training steps when no texture model is given.
    texture_width, texture_batch_size : its UNet width (reference 16) and batch (8 keeps a CPU run short).
    texture_crop_size : side of the texture model's cell crops (a multiple of 8; 96 fits MSC at 1/2 scale and
        GOWT1 at full scale; cells larger than a crop are left out of the training, so MSC at full scale needs
        about 192).
    texture_max_minutes : stop the texture training after this many minutes (0 = no limit; a GPU run with
        ``texture_steps`` set high trains as many steps as fit; the weights record the steps reached).
    texture_mask_channel, texture_t_max, texture_ema_decay, texture_precision : the recipe of the bundled
        model (mask channel, absolute units, t < 400, EMA 0.995; docs/texture.md); precision ``auto`` is
        fp32 on a CPU, ``bf16`` is faster on CPUs with AVX512-BF16.
    flow_steps, flow_batch_size : flow-model training when no flow model is given.
    sampler, ddim_steps, ddim_eta : diffusion sampling (the ``bvdm generate`` default: DDIM 50, eta 0.5).
    outlines : cell outlines of the simulated masks: ``model`` (radial contour PCA) or ``real`` (the real
        outlines of the training part, kept in the shape model; for cells with protrusions, e.g. MSC).
    rim_profile : hold both painters to the real cells' intensity profile across the rim, measured on the
        training part's cell crops (:mod:`~napari_bvdm.texture.profile`: the diffusion painter's silhouette is
        shaded with it and each batch's output matched to it; the classical painter's silhouette is shaded), so
        the two sets still differ only in texture. False paints from flat silhouettes.
    rim_distribution : with ``rim_profile``, the diffusion painter matches the real cells' whole intensity
        distribution at every depth, not only its mean (``DiffusionPainterConfig.rim_distribution``: real MSC
        cells hold large dim regions that mean matching leaves out).
    halo : hold every synthetic frame (both sets) to the real frames' halo, the intensity 1 ..
        ``halo_distance`` px outside the annotated outlines as a share of the cell's contrast
        (:func:`~napari_bvdm.texture.profile.measure_halo` on the training part's annotated frames;
        ``SynthesisConfig.halo``). Real MSC cells fade over about 4 px beyond their annotation
        (0.23 / 0.13 / 0.08 / 0.05 at 1 / 2 / 3 / 4 px at 1/2 scale) where painted cells stop at the edge.
    halo_distance : how far out the halo is measured and held (px).
    halo_neighbours : with ``halo``, neighbouring cells' halos add up (``SynthesisConfig.halo_neighbours``).
    fixed_pattern : paint the real background's row and column offsets (``SceneStats.row_profile``,
        ``col_profile``: MSC's bright top rows and dark column) into every synthetic frame; False = the
        smooth illumination grid only (every evaluation before stop 17).
    brightness_follows_size : the simulated cells' brightness follows their size with the fitted correlation
        (``SimulationConfig.brightness_follows_size``; MSC's larger, spread cells are dimmer); False = drawn
        independently, as in every evaluation before stop 18.
    density_scale : multiplies the fitted cell density of the simulated videos
        (``SimulationConfig.density_scale``): > 1 gives more cells close to or touching each other.
    faint_cells : draw the faint blobs that the real labels leave out (out-of-focus nuclei) into both sets'
        backgrounds, unlabelled (``SynthesisConfig.faint_cells``); off in every evaluation before stop 19.
    device : ``auto``, ``cpu``, ``cuda``...
    """

    videos: int = 2
    frames: int = 0
    downsample: int = 1
    seed: int = 0
    texture_steps: int = 2000
    texture_width: int = 8
    texture_batch_size: int = 8
    texture_crop_size: int = 96
    texture_max_minutes: float = 0.0
    texture_mask_channel: bool = True
    texture_t_max: int = 400
    texture_ema_decay: float = 0.995
    texture_precision: str = "auto"
    flow_steps: int = 300
    flow_batch_size: int = 8
    sampler: str = generation.SAMPLER
    ddim_steps: int = generation.DDIM_STEPS
    ddim_eta: float = generation.DDIM_ETA
    outlines: Literal["model", "real"] = "model"
    rim_profile: bool = True
    rim_distribution: bool = False
    halo: bool = False
    halo_distance: int = 4
    halo_neighbours: bool = False
    fixed_pattern: bool = True
    density_scale: float = 1.0
    brightness_follows_size: bool = True
    faint_cells: bool = False
    device: str = "auto"

    def check(self) -> None:
        self._require(1 <= self.videos <= 99, "videos", "must be in 1..99")
        self._require(self.frames >= 0, "frames", "must be >= 0 (0 = length of the training part)")
        self._require(1 <= self.downsample <= 8, "downsample", "must be in 1..8")
        self._require(1 <= self.halo_distance <= 16, "halo_distance", "must be in 1..16")
        self._require(0 < self.density_scale <= 10, "density_scale", "must be in (0, 10]")
        self._require(self.texture_steps >= 1, "texture_steps", "must be >= 1")
        self._require(1 <= self.texture_width <= 256, "texture_width", "must be in 1..256")
        self._require(self.texture_batch_size >= 1, "texture_batch_size", "must be >= 1")
        self._require(32 <= self.texture_crop_size <= 512 and self.texture_crop_size % 8 == 0, "texture_crop_size",
                      "must be a multiple of 8 in 32..512")
        self._require(0 <= self.texture_max_minutes < 1e6, "texture_max_minutes", "must be >= 0 (0 = no limit)")
        self._require(self.flow_steps >= 1, "flow_steps", "must be >= 1")
        self._require(self.flow_batch_size >= 1, "flow_batch_size", "must be >= 1")
        self._require(self.sampler in ("ddpm", "ddim"), "sampler", "must be ddpm or ddim")
        self._require(self.ddim_steps >= 1, "ddim_steps", "must be >= 1")
        self._require(0 <= self.ddim_eta <= 1, "ddim_eta", "must be in [0, 1]")
        self._require(1 <= self.texture_t_max <= 1000, "texture_t_max", "must be in 1..1000")
        self._require(self.texture_precision in ("auto", "fp32", "bf16"), "texture_precision",
                      "must be auto, fp32 or bf16")
        self._require(self.outlines in ("model", "real"), "outlines", "must be model or real")


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
    from ..flow.model import FlowModel
    from ..flow.train import FlowTrainConfig, train_flow
    from ..io.readers import read_video
    from ..shapes.fit import fit_shape_model
    from ..shapes.model import MAX_OUTLINES, FitConfig
    from ..shapes.simulate import SimulationConfig, simulate_masks
    from ..synthesis.background import fit_scene_stats
    from ..synthesis.export import export_dataset
    from ..synthesis.pipeline import SynthesisConfig
    from ..texture.crops import extract_crops
    from ..texture.model import TextureModel, TextureModelConfig
    from ..texture.painter import ClassicalPainter, DiffusionPainter
    from ..texture.profile import RimProfile, halo_from_video
    from ..texture.train import TrainConfig as TextureTrainConfig
    from ..texture.train import train_texture
    from ..texture.unet import UNetConfig
    from .data import split_frames

    cfg = config or SyntheticSetsConfig()
    bad = sorted(set(sets) - {"synthetic", "classical"})
    if bad:
        raise InputError(f"unknown synthetic set(s) {bad}; use synthetic and/or classical")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    yield Progress(0, 5, "reading the training part of the real sequence", stage="make-synthetic")
    full = read_video(real, lazy=True, check=False)
    n_real = min(max_frames, full.n_frames) if max_frames else full.n_frames
    train_range, _ = split_frames(n_real, split)
    video = full.frames(0, train_range.stop)
    video.image = np.asarray(video.image)
    video.labels = {k: np.asarray(v) for k, v in video.labels.items()}
    if cfg.downsample > 1:
        _downsample_video(video, cfg.downsample)
    n_frames = cfg.frames or video.n_frames
    _, height, width = video.shape

    yield Progress(1, 5, "fitting the shape and motion model", stage="make-synthetic")
    fit_cfg = FitConfig(keep_outlines=MAX_OUTLINES if cfg.outlines == "real" else 0)
    shape_model = yield from fit_shape_model(video, fit_cfg, cancel=cancel)
    shape_model.save(out / "shape_model.json")
    full_masks = video.labels.get("SEG", video.labels.get("TRA"))
    shape_frames = video.seg_frames if "SEG" in video.labels else None
    scene = fit_scene_stats(video.image, video.labels.get("TRA"), fixed_pattern=cfg.fixed_pattern, source=str(real))
    crops = extract_crops(video.image, full_masks, tracks=video.labels.get("TRA"), frames=shape_frames,
                          normalisation=scene.norm, crop_size=cfg.texture_crop_size)
    profile = None  # the same for both painters (a loaded texture model's own may come from other data)
    if cfg.rim_profile:
        try:
            profile = RimProfile.from_crops(crops)
        except InputError as e:
            warnings.warn(f"no rim profile, painting from flat silhouettes: {e}", stacklevel=2)

    yield Progress(2, 5, "flow model", stage="make-synthetic")
    if flow_model:
        flow = FlowModel.load(flow_model)
        flow_path = Path(flow_model)
    else:
        flow_path = out / "flow.safetensors"
        flow = yield from train_flow(video.labels["TRA"], flow_path,
                                     FlowTrainConfig(steps=cfg.flow_steps, batch_size=cfg.flow_batch_size,
                                                     device=cfg.device, seed=cfg.seed),
                                     cancel=cancel, resume=False)

    def masks(number: int, seed: int):
        return simulate_masks(shape_model, SimulationConfig(frames=n_frames, height=height, width=width,
                                                            seed=seed, outlines=cfg.outlines,
                                                            density_scale=cfg.density_scale,
                                                            brightness_follows_size=cfg.brightness_follows_size),
                              cancel=cancel)

    written: dict[str, Path] = {}
    halo: list[float] = []
    if cfg.halo:
        try:
            halo = halo_from_video(video, cfg.halo_distance)
        except InputError as e:
            warnings.warn(f"no halo: {e}", stacklevel=2)
    synth_cfg = SynthesisConfig(seed=cfg.seed, halo=halo, halo_neighbours=cfg.halo_neighbours,
                                faint_cells=cfg.faint_cells)
    if "synthetic" in sets:
        yield Progress(3, 5, "texture model", stage="make-synthetic")
        if texture_model:
            tex = TextureModel.load(texture_model)
            tex_path = Path(texture_model)
        else:
            tex_path = out / "texture.safetensors"
            mcfg = TextureModelConfig(unet=UNetConfig(width=cfg.texture_width, mask_channel=cfg.texture_mask_channel),
                                      crop_size=crops.crop_size)
            tcfg = TextureTrainConfig(steps=cfg.texture_steps, batch_size=cfg.texture_batch_size, device=cfg.device,
                                      seed=cfg.seed, t_max=cfg.texture_t_max, ema_decay=cfg.texture_ema_decay,
                                      precision=cfg.texture_precision, max_seconds=60 * cfg.texture_max_minutes)
            tex = yield from train_texture(crops, mcfg, tcfg, cancel=cancel)
            tex.save(tex_path)
        painter = DiffusionPainter(tex, sampler=cfg.sampler, ddim_steps=cfg.ddim_steps, ddim_eta=cfg.ddim_eta,
                                   device=cfg.device, rim_profile=cfg.rim_profile, profile=profile,
                                   rim_distribution=cfg.rim_distribution)
        written["synthetic"] = yield from export_dataset(
            out / "synthetic", masks, painter, flow, scene, synth_cfg, n_videos=cfg.videos,
            model_files={"texture": tex_path, "flow": flow_path}, parameters={"evaluate": cfg.to_dict()},
            overwrite=True, cancel=cancel)
    if "classical" in sets:
        yield Progress(4, 5, "classical renderer", stage="make-synthetic")
        written["classical"] = yield from export_dataset(
            out / "classical", masks, ClassicalPainter.from_crops(crops, profile), flow, scene, synth_cfg,
            n_videos=cfg.videos, model_files={"flow": flow_path}, parameters={"evaluate": cfg.to_dict()},
            overwrite=True, cancel=cancel)
    cfg.save(out / "synthetic_sets.json")
    yield Progress(5, 5, "synthetic training sets written", stage="make-synthetic")
    return written
