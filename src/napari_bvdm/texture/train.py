"""Training loop of the texture model, written as a job generator.

``train_texture(crops, model_config, train_config, checkpoint=...)`` yields
:class:`~napari_bvdm.runtime.progress.Progress` events (metrics ``loss``, ``val_loss``, ``crops_per_s``,
``eta_s``) and returns the trained :class:`~napari_bvdm.texture.model.TextureModel` (EMA weights, on the CPU).

- device: ``"auto"`` (CUDA, then MPS, then CPU) or explicit; mixed precision (bf16, else fp16 with a
  grad scaler) on CUDA;
- EMA of the weights (the saved model), RAdam (reference optimiser);
- a checkpoint (safetensors, kind ``texture-ddpm-checkpoint``) every ``checkpoint_every`` steps and on
  cancel/close; ``resume=True`` continues from it and refuses a different config or different data;
- validation: denoising MSE of the EMA model on the held-out *tracks*, at fixed timesteps with fixed noise;
- accelerator memory is released when the job ends, however it ends.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..runtime.config import Config, ConfigError
from ..runtime.device import release_device_memory
from ..runtime.distributed import setup as dist_setup
from ..runtime.progress import CancelToken, Progress
from ..runtime.training import EMA, Checkpoint, TrainingError, TrainingLoop, optimizer_to
from ..runtime.weights import WeightsError, load_weights
from .crops import CellCrops, check_enough
from .model import TextureModel, TextureModelConfig
from .profile import RimProfile
from .unet import UNet

CKPT_KIND = "texture-ddpm-checkpoint"
# settings that may change between a run and its resume
_RESUMABLE = {"steps", "checkpoint_every", "val_every", "device", "precision", "num_threads", "max_seconds"}


@dataclass
class TrainConfig(Config):
    """Texture-model training settings.

    Parameters
    ----------
    steps : optimiser steps in total (a resumed run continues up to this count).
    batch_size : crops per step (reference 32).
    lr : RAdam learning rate (reference 1e-3).
    ema_decay : EMA decay of the saved weights (0 disables EMA).
    t_max : timesteps are drawn uniformly from [0, t_max); 1000 trains the full chain (reference), a smaller
        value concentrates a short training on the range SDEdit uses (t < Tf0).
    augment : random 90-degree rotations and flips (the 8 symmetries of the square).
    val_fraction : share of *tracks* held out for validation.
    val_t : fixed timesteps of the validation loss.
    val_every, checkpoint_every : in steps.
    precision : "auto" (bf16/fp16 on CUDA, fp32 elsewhere), "fp32", "bf16" or "fp16".
    seed, split_seed : training randomness and the held-out split.
    device : "auto", "cpu", "cuda", "cuda:N" or "mps".
    num_threads : CPU threads for torch (0 keeps torch's setting).
    max_seconds : stop after this much training time (0 = no limit), between steps: the model of the step
        reached is returned and checkpointed, and ``info["stopped_by_time"]`` says so (a GPU-budget run:
        as many steps as fit into a fixed time; not reproducible by step count).
    init : start from a trained texture model instead of random weights (fine-tuning): a weights file, or
        ``"bundled"`` for the model that ships with the package; its architecture replaces ``model_config``.
    """

    steps: int = 2000
    batch_size: int = 16
    lr: float = 1e-3
    ema_decay: float = 0.999
    t_max: int = 1000
    augment: bool = True
    val_fraction: float = 0.15
    val_t: tuple[int, ...] = (10, 50, 100, 200, 400)
    val_every: int = 100
    checkpoint_every: int = 100
    precision: str = "auto"
    seed: int = 1337
    split_seed: int = 42
    device: str = "auto"
    num_threads: int = 0
    max_seconds: float = 0.0
    init: str = ""

    def check(self) -> None:
        self._require(self.steps >= 1, "steps", "must be >= 1")
        self._require(1 <= self.batch_size <= 4096, "batch_size", "must be in 1..4096")
        self._require(0 < self.lr < 1, "lr", "must be in (0, 1)")
        self._require(0 <= self.ema_decay < 1, "ema_decay", "must be in [0, 1)")
        self._require(self.t_max >= 1, "t_max", "must be >= 1")
        self._require(0 <= self.val_fraction < 1, "val_fraction", "must be in [0, 1)")
        self._require(self.val_every >= 1, "val_every", "must be >= 1")
        self._require(self.checkpoint_every >= 1, "checkpoint_every", "must be >= 1")
        self._require(self.precision in ("auto", "fp32", "bf16", "fp16"), "precision",
                      "must be auto, fp32, bf16 or fp16")
        self._require(self.num_threads >= 0, "num_threads", "must be >= 0")
        self._require(self.max_seconds >= 0 and math.isfinite(self.max_seconds), "max_seconds",
                      "must be >= 0 (0 = no limit)")
        self._require(self.init in ("", "bundled") or self.init.endswith(".safetensors"), "init",
                      "must be empty, 'bundled' or a .safetensors texture model file")


def checkpoint_path_for(weights: str | Path) -> Path:
    """Where the checkpoint of a run that writes ``weights`` lives (``X.safetensors`` -> ``X.ckpt.safetensors``)."""
    p = Path(weights)
    stem = p.name[: -len(".safetensors")] if p.name.endswith(".safetensors") else p.name
    return p.with_name(stem + ".ckpt.safetensors")


def _autocast(device: torch.device, precision: str):
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision == "fp32":
        return None, precision
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return (device.type, dtype), precision


def _augment(x: torch.Tensor, m: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    ops = torch.randint(0, 8, (x.shape[0],), generator=gen).tolist()
    xs, ms = [], []
    for i, op in enumerate(ops):
        xi, mi = x[i], m[i]
        if op >= 4:
            xi, mi = xi.flip(-1), mi.flip(-1)
        k = op % 4
        xs.append(torch.rot90(xi, k, (-2, -1)))
        ms.append(torch.rot90(mi, k, (-2, -1)))
    return torch.stack(xs), torch.stack(ms)


def _net_input(x: torch.Tensor, mask: torch.Tensor, conditioned: bool) -> torch.Tensor:
    return torch.cat([x, mask], dim=1) if conditioned else x


@torch.no_grad()
def validation_loss(net: UNet, model: TextureModel, images: torch.Tensor, masks: torch.Tensor,
                    ts: tuple[int, ...], seed: int = 0, batch: int = 64) -> float:
    """Mean epsilon-MSE over ``images`` at the fixed timesteps ``ts`` with fixed noise."""
    if images.shape[0] == 0:
        return float("nan")
    gen = torch.Generator().manual_seed(seed)
    was_training = net.training
    net.eval()
    total, n = 0.0, 0
    for t in ts:
        t = min(int(t), model.config.T - 1)
        noise_all = torch.randn(images.shape, generator=gen).to(images.device)
        for s in range(0, images.shape[0], batch):
            x0, m, noise = images[s:s + batch], masks[s:s + batch], noise_all[s:s + batch]
            tt = torch.full((x0.shape[0],), t, dtype=torch.long, device=x0.device)
            xt = model.schedule.add_noise(x0, tt, noise)
            eps = net(_net_input(xt, m, model.mask_conditioned), tt).float()
            total += float(((eps - noise) ** 2).mean()) * x0.shape[0]
            n += x0.shape[0]
    net.train(was_training)
    return total / n


def scaled_images(crops: CellCrops, model_config: TextureModelConfig) -> np.ndarray:
    """Training images: normalised units, or scaled per cell to ``cell_level`` when the model asks so."""
    if model_config.cell_level is None:
        return crops.images
    b = np.maximum(crops.brightness, 1e-3)[:, None, None]
    return (crops.images * (model_config.cell_level / b)).astype(np.float32)


def save_checkpoint(path: Path, step: int, net: UNet, ema: UNet, opt: torch.optim.Optimizer, gen: torch.Generator,
                    model_config: TextureModelConfig, config: TrainConfig, crops: CellCrops,
                    history: dict[str, list], val_tracks: list[int] | None = None,
                    profile: RimProfile | None = None) -> Path:
    """Write a resumable checkpoint (kind ``texture-ddpm-checkpoint``) of a run at ``step``."""
    extra = {"data": crops.fingerprint(), "val_tracks": val_tracks or [],
             "normalisation": crops.normalisation.to_dict(), "history": history,
             "profile": (profile or RimProfile.from_crops(crops)).to_dict()}
    state = Checkpoint(path, CKPT_KIND, {"net": net, "ema": ema}, optimizer=opt, generator=gen)
    return state.save(step, {"model": model_config.to_dict(), "train": config.to_dict()}, extra)


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k not in _RESUMABLE}


def _check_resumable(ckpt: Path, meta: dict[str, Any], model_config: TextureModelConfig, config: TrainConfig,
                     crops: CellCrops) -> None:
    """Refuse to resume a checkpoint of another model, other training settings or other data."""
    old_model, old_train = meta["config"]["model"], meta["config"]["train"]
    if old_model != model_config.to_dict():
        raise ConfigError(f"cannot resume {ckpt}: it was trained with model settings {old_model}, "
                          f"now {model_config.to_dict()}; use the same settings or start a new run")
    if _comparable(old_train) != _comparable(config.to_dict()):
        diff = {k: (old_train.get(k), v) for k, v in _comparable(config.to_dict()).items()
                if old_train.get(k) != v}
        raise ConfigError(f"cannot resume {ckpt}: training settings differ (old, new): {diff}; use the same "
                          "settings (only steps, device, precision and intervals may change) or start anew")
    if meta["extra"]["data"] != crops.fingerprint():
        raise ConfigError(f"cannot resume {ckpt}: it was trained on other data ({meta['extra']['data']} vs "
                          f"{crops.fingerprint()})")


class _TextureRun:
    """State of one texture training run: networks, optimiser, random stream, data and history."""

    def __init__(self, crops: CellCrops, model_config: TextureModelConfig, config: TrainConfig,
                 ckpt: Path | None) -> None:
        self.crops, self.model_config, self.config, self.ckpt = crops, model_config, config, ckpt
        self.dist = dist_setup()  # DistributedDataParallel under torchrun; a no-op otherwise
        self.device = self.dist.device(config.device)
        self.profile = RimProfile.from_crops(crops)  # measured once: stored in every checkpoint and in the model
        self.model = TextureModel(model_config, crops.normalisation)
        seed = self.dist.rank_seed(config.seed) if self.dist.enabled else config.seed
        self.gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(config.seed)
        self.net = UNet(model_config.unet)  # init from the seeded global generator
        if config.init:
            self.net.load_state_dict(initial_model(config.init).net.state_dict())
        self.ema = EMA(self.net, config.ema_decay)
        self.opt = torch.optim.RAdam(self.net.parameters(), lr=config.lr)
        self.state = Checkpoint(ckpt or "", CKPT_KIND, {"net": self.net, "ema": self.ema.module},
                                optimizer=self.opt, generator=self.gen)
        self.step = 0
        self.history: dict[str, list] = {"step": [], "loss": [], "val_step": [], "val_loss": []}
        train_idx, self.val_idx = crops.split_by_track(config.val_fraction, config.split_seed)
        self.tr_i = torch.from_numpy(train_idx)
        self.val_tracks = sorted(set(crops.track[self.val_idx].tolist()))
        self.t_hi = min(config.t_max, model_config.T)
        self.autocast, precision = _autocast(self.device, config.precision)
        use_scaler = precision == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    def resume(self) -> None:
        ckpt = self.ckpt
        if ckpt is None or not ckpt.is_file():
            raise ConfigError(f"cannot resume: checkpoint {ckpt} does not exist (start without --resume)")
        loaded = self.state.load()
        _check_resumable(ckpt, loaded[1], self.model_config, self.config, self.crops)
        self.step, extra = self.state.restore(loaded=loaded)
        if self.dist.enabled and not self.dist.is_main:  # the checkpoint holds rank 0's stream: draw other batches
            self.gen.manual_seed(self.dist.rank_seed(self.config.seed) + self.step)
        self.history = extra.get("history", self.history)

    def to_device(self) -> None:
        dev = self.device
        self.net.to(dev)
        self.ema.module.to(dev)
        self.fwd = self.dist.wrap(self.net)  # gradients averaged over ranks under torchrun
        optimizer_to(self.opt, dev)  # optimizer state follows the parameters
        self.ims = torch.from_numpy(scaled_images(self.crops, self.model_config)[:, None]).to(dev)
        self.mks = torch.from_numpy(self.crops.masks[:, None].astype(np.float32)).to(dev)
        val = torch.from_numpy(self.val_idx)
        self.val_im, self.val_mk = self.ims[val], self.mks[val]
        self.net.train()
        self.val_loss = self.history["val_loss"][-1] if self.history["val_loss"] else float("nan")

    def train_step(self, _: int) -> dict[str, torch.Tensor]:
        c, gen = self.config, self.gen
        sel = self.tr_i[torch.randint(0, len(self.tr_i), (c.batch_size,), generator=gen)]
        x0, m = self.ims[sel], self.mks[sel]
        if c.augment:
            x0, m = _augment(x0, m, gen)
        t = torch.randint(0, self.t_hi, (c.batch_size,), generator=gen).to(self.device)
        noise = torch.randn(x0.shape, generator=gen).to(self.device)
        xt = self.model.schedule.add_noise(x0, t, noise)
        x_in = _net_input(xt, m, self.model_config.unet.mask_channel)
        try:
            if self.autocast is not None:
                with torch.autocast(self.autocast[0], dtype=self.autocast[1]):
                    eps = self.fwd(x_in, t)
            else:
                eps = self.fwd(x_in, t)
            loss = torch.nn.functional.mse_loss(eps.float(), noise)
            self.opt.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.opt)
                self.scaler.update()
            else:
                loss.backward()
                self.opt.step()
        except torch.OutOfMemoryError as e:
            raise TrainingError(
                f"out of memory on {self.device} at batch size {c.batch_size}; lower the batch size "
                f"(e.g. {max(1, c.batch_size // 2)}) or train on the CPU. The last checkpoint is kept."
            ) from e
        return {"loss": loss.detach()}

    def validate(self, step: int) -> None:
        self.val_loss = validation_loss(self.ema.module, self.model, self.val_im, self.val_mk, self.config.val_t)
        self.history["val_step"].append(step)
        self.history["val_loss"].append(round(self.val_loss, 6))

    def after_step(self, step: int, metrics: dict[str, float]) -> dict[str, float]:
        self.history["step"].append(step)
        self.history["loss"].append(round(metrics["loss"], 6))
        if step % self.config.val_every == 0 or step == self.config.steps:
            self.validate(step)
        return {"val_loss": self.val_loss}

    def on_time_limit(self, step: int) -> None:
        if not self.history["val_step"] or self.history["val_step"][-1] != step:
            self.validate(step)

    def save(self, step: int) -> None:
        save_checkpoint(self.ckpt, step, self.net, self.ema.module, self.opt, self.gen, self.model_config,
                        self.config, self.crops, self.history, self.val_tracks, self.profile)

    def loop(self, cancel: CancelToken | None) -> TrainingLoop:
        c = self.config
        return TrainingLoop(c.steps, step=self.step, stage="train", message="training texture model",
                            dist=self.dist, cancel=cancel, max_seconds=c.max_seconds, ema=self.ema,
                            save=self.save if self.ckpt is not None else None, checkpoint_every=c.checkpoint_every,
                            check_finite=True, items_per_step=c.batch_size, rate_name="crops_per_s")

    def result(self, loop: TrainingLoop) -> TextureModel:
        c = self.config
        info = {"steps": loop.step, "batch_size": c.batch_size, "world_size": self.dist.world_size,
                "train_config": c.to_dict(),
                "data": self.crops.fingerprint(), "val_tracks": self.val_tracks,
                "final_val_loss": self.val_loss}
        if loop.stopped_by_time:
            info["stopped_by_time"] = True
        return TextureModel(self.model_config, self.crops.normalisation, self.ema.module.eval(), info, self.profile)


def initial_model(init: str) -> TextureModel:
    """The model a fine-tuning starts from: ``"bundled"`` or a texture weights file."""
    return TextureModel.default() if init == "bundled" else TextureModel.load(init)


def train_texture(
    crops: CellCrops,
    model_config: TextureModelConfig | None = None,
    config: TrainConfig | None = None,
    *,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, TextureModel]:
    """Train a texture model on ``crops``; a job generator (see module doc).

    Parameters
    ----------
    crops : training data (:func:`~napari_bvdm.texture.crops.extract_crops`); split by track here.
    model_config : architecture (crop size must equal the crops').
    config : training settings.
    checkpoint : checkpoint file; written every ``checkpoint_every`` steps and when cancelled.
    resume : continue from ``checkpoint`` (it must exist and match config and data).
    cancel : checked between steps; on cancel the checkpoint is written and :class:`Cancelled` raised.

    Raises
    ------
    InputError
        Too few cells.
    ConfigError
        Crop size mismatch, or a resume with another config or other data.
    TrainingError
        Out of accelerator memory (with advice).
    """
    config = config or TrainConfig()
    if config.init:
        model_config = initial_model(config.init).config
    model_config = model_config or TextureModelConfig(crop_size=crops.crop_size)
    if model_config.crop_size != crops.crop_size:
        raise ConfigError(f"model crop_size {model_config.crop_size} differs from the crops' {crops.crop_size}")
    check_enough(crops)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    run = _TextureRun(crops, model_config, config, Path(checkpoint) if checkpoint is not None else None)
    if resume:
        run.resume()
    loop = run.loop(cancel)
    try:
        run.to_device()
        yield Progress(run.step, config.steps, "training texture model", {"val_loss": run.val_loss}, "train")
        yield from loop.run(run.train_step, run.after_step, run.on_time_limit)
    finally:
        run.net.to("cpu")
        run.ema.module.to("cpu")
        release_device_memory(run.device)
    run.dist.barrier()
    return run.result(loop)


def load_checkpoint_model(path: str | Path) -> TextureModel:
    """The EMA model inside a checkpoint (to preview a run that is still going)."""
    from .normalisation import Normalisation

    tensors, meta = load_weights(path, CKPT_KIND)
    cfg = TextureModelConfig.from_dict(meta["config"]["model"])
    net = UNet(cfg.unet)
    try:
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    except RuntimeError as e:
        raise WeightsError(f"{path}: checkpoint does not match its config ({e})") from None
    ex = meta["extra"]
    hist = ex.get("history", {})
    train = meta["config"].get("train", {})
    info = {"steps": ex["step"], "batch_size": train.get("batch_size"), "train_config": train, "data": ex.get("data"),
            "val_tracks": ex.get("val_tracks", []),
            "final_val_loss": hist["val_loss"][-1] if hist.get("val_loss") else float("nan")}
    profile = RimProfile.from_dict(ex["profile"]) if ex.get("profile") is not None else None
    return TextureModel(cfg, Normalisation.from_dict(ex["normalisation"]), net, info, profile)
