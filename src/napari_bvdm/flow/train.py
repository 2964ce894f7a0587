"""Training loop for the flow model: a generator yielding Progress, with checkpoint/resume and validation Dice.

Loss (VoxelMorph, BVDM): ``MSE(warp(prev, u), cur) + smooth_weight * mean(|grad u|^2)`` on binary mask
crops of consecutive frames of the same real track. Validation: Dice between the warped previous mask
(bilinear, threshold 0.5) and the current mask on held-out *tracks*, against the identity baseline.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..io.video import InputError
from ..runtime.config import Config
from ..runtime.distributed import setup as dist_setup
from ..runtime.progress import CancelToken, Job, Progress
from ..runtime.training import Checkpoint, TrainingLoop
from ..runtime.weights import WeightsError, read_metadata
from .model import FlowConfig, FlowModel
from .pairs import MaskPairs, load_label_video, mask_pairs

__all__ = ["FlowTrainConfig", "train_flow", "dice", "smoothness", "checkpoint_path", "evaluate_pairs"]

CKPT_KIND = "flow-checkpoint"


@dataclasses.dataclass
class FlowTrainConfig(Config):
    """Settings of :func:`train_flow` (saved into the weights file)."""

    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    smooth_weight: float = 0.01
    val_fraction: float = 0.15
    val_every: int = 250
    checkpoint_every: int = 250
    max_pairs: int | None = None
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    #: stop between steps after this much training time (0 = no limit); the model reached is saved
    max_seconds: float = 0.0
    #: start from a trained flow model (fine-tuning): a weights file, or "bundled" for the package's model;
    #: its architecture replaces ``model``
    init: str = ""
    model: FlowConfig = dataclasses.field(default_factory=FlowConfig)

    def check(self) -> None:
        self._require(self.steps >= 1, "steps", "must be >= 1")
        self._require(self.batch_size >= 1, "batch_size", "must be >= 1")
        self._require(self.lr > 0, "lr", "must be > 0")
        self._require(self.smooth_weight >= 0, "smooth_weight", "must be >= 0")
        self._require(0 <= self.val_fraction < 1, "val_fraction", "must be in [0, 1)")
        self._require(self.val_every >= 1, "val_every", "must be >= 1")
        self._require(self.checkpoint_every >= 1, "checkpoint_every", "must be >= 1")
        self._require(self.max_pairs is None or self.max_pairs >= 2, "max_pairs", "must be >= 2 or null")
        self._require(self.max_seconds >= 0, "max_seconds", "must be >= 0 (0 = no limit)")
        self._require(self.init in ("", "bundled") or self.init.endswith(".safetensors"), "init",
                      "must be empty, 'bundled' or a .safetensors flow model file")


def checkpoint_path(weights_path: str | Path) -> Path:
    """Where training keeps its resumable checkpoint for ``weights_path``."""
    p = Path(weights_path)
    return p.with_name(p.stem + ".ckpt.safetensors")


def dice(a, b) -> np.ndarray:
    """Per-item Dice of two boolean stacks ``(B, h, w)`` (torch or numpy); 1 when both are empty."""
    a = np.asarray(a, bool).reshape(len(a), -1)
    b = np.asarray(b, bool).reshape(len(b), -1)
    inter = (a & b).sum(1)
    tot = a.sum(1) + b.sum(1)
    return np.where(tot > 0, 2.0 * inter / np.maximum(tot, 1), 1.0)


def smoothness(flow):
    """VoxelMorph ``Grad('l2')``: mean squared finite difference of the displacement."""
    dy = flow[:, :, 1:, :] - flow[:, :, :-1, :]
    dx = flow[:, :, :, 1:] - flow[:, :, :, :-1]
    return 0.5 * ((dy**2).mean() + (dx**2).mean())


def evaluate_pairs(model: FlowModel, pairs: MaskPairs, batch_size: int = 64) -> dict[str, float]:
    """Mean Dice of the warped previous mask vs the current one, with identity and centroid-shift baselines."""
    import torch

    from .net import warp

    d_flow, d_id, d_shift = [], [], []
    for i in range(0, len(pairs), batch_size):
        prev = pairs.prev[i:i + batch_size]
        cur = pairs.cur[i:i + batch_size]
        flow = model.predict(prev, cur)
        p = torch.from_numpy(prev.astype(np.float32))[:, None]
        w = warp(p, torch.from_numpy(flow), mode="bilinear")[:, 0].numpy() > 0.5
        d_flow.append(dice(w, cur))
        d_id.append(dice(prev, cur))
        d_shift.append(dice(_centroid_shift(prev, cur), cur))
    return {
        "dice": float(np.concatenate(d_flow).mean()),
        "dice_identity": float(np.concatenate(d_id).mean()),
        "dice_centroid_shift": float(np.concatenate(d_shift).mean()),
        "pairs": len(pairs),
    }


def _centroid_shift(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Rigid baseline: each previous mask translated (integer pixels) onto the current centroid."""
    out = np.zeros_like(prev)
    h, w = prev.shape[1:]
    yy, xx = np.mgrid[:h, :w]
    for k in range(len(prev)):
        if not prev[k].any() or not cur[k].any():
            out[k] = prev[k]
            continue
        dy = int(round(yy[cur[k]].mean() - yy[prev[k]].mean()))
        dx = int(round(xx[cur[k]].mean() - xx[prev[k]].mean()))
        out[k] = np.roll(np.roll(prev[k], dy, 0), dx, 1)
    return out


def _augment(prev, cur, gen):
    """Same random dihedral transform for both masks, and random time reversal."""
    import torch

    k = int(torch.randint(0, 4, (1,), generator=gen))
    flip = bool(torch.randint(0, 2, (1,), generator=gen))
    swap = bool(torch.randint(0, 2, (1,), generator=gen))
    prev, cur = torch.rot90(prev, k, (2, 3)), torch.rot90(cur, k, (2, 3))
    if flip:
        prev, cur = prev.flip(3), cur.flip(3)
    if swap:
        prev, cur = cur, prev
    return prev, cur


def _load_pairs(source: str | Path | np.ndarray | MaskPairs, cfg: FlowTrainConfig) -> tuple[MaskPairs, str]:
    """Mask pairs of ``source`` and a description of it for the weights file."""
    if isinstance(source, MaskPairs):
        return source, "array"
    src_desc, lineage = "array", None
    if isinstance(source, (str, Path)):
        labels, lineage, kind = load_label_video(source)
        src_desc = f"{source} ({kind})"
    else:
        labels = np.asarray(source)
    pairs = mask_pairs(labels, cfg.model.crop_size, tracked=True if lineage is not None else None,
                       max_pairs=cfg.max_pairs, seed=cfg.seed)
    return pairs, src_desc


def _split(pairs: MaskPairs, cfg: FlowTrainConfig) -> tuple[MaskPairs, MaskPairs]:
    if len(pairs) < 2:
        raise InputError(f"only {len(pairs)} mask pair(s); the flow model needs at least 2")
    if cfg.val_fraction > 0:
        train, val = pairs.split(cfg.val_fraction, seed=cfg.seed)
    else:
        train, val = pairs, pairs.subset(np.zeros(len(pairs), bool))
    return (pairs if len(train) == 0 else train), val


class _FlowRun:
    """One flow training run: network, optimiser, training pairs, history; its steps for :class:`TrainingLoop`."""

    def __init__(self, cfg: FlowTrainConfig, train: MaskPairs, val: MaskPairs, ckpt: Path) -> None:
        import torch

        from ..runtime.seeding import seed_everything
        from .net import FlowNet

        self.cfg, self.train, self.val = cfg, train, val
        self.dist = dist_setup()  # DistributedDataParallel under torchrun; a no-op otherwise
        self.device = self.dist.device(cfg.device)
        seed_everything(cfg.seed)
        self.net = FlowNet(cfg.model.encoder, cfg.model.decoder)
        if cfg.init:
            self.net.load_state_dict(initial_flow_model(cfg.init).net.state_dict())
        self.net.to(self.device)
        self.fwd = self.dist.wrap(self.net)  # gradients averaged over ranks under torchrun
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.state = Checkpoint(ckpt, CKPT_KIND, {"net": self.net}, optimizer=self.opt)
        self.history: list[dict[str, float]] = []
        self.prev_all = torch.from_numpy(train.prev.astype(np.float32))[:, None]
        self.cur_all = torch.from_numpy(train.cur.astype(np.float32))[:, None]

    def resume(self) -> int:
        """Continue from the checkpoint (the optimiser keeps this run's learning rate); the step reached."""
        path = self.state.path
        meta = read_metadata(path)
        if meta["config"].get("model") != self.cfg.model.to_dict():
            raise WeightsError(f"checkpoint {path} was made for another network ({meta['config'].get('model')}); "
                               "delete it or train with --no-resume")
        step, extra = self.state.restore(str(self.device), param_groups=False)
        self.history = list(extra.get("history", []))
        return step

    def train_step(self, step: int) -> dict[str, Any]:
        import torch

        from ..runtime.seeding import torch_generator
        from .net import warp

        cfg, dist = self.cfg, self.dist
        # per step: resuming gives identical runs; under torchrun each rank draws its own batch
        gen = (torch_generator(cfg.seed, "flow-train", step, dist.rank) if dist.enabled
               else torch_generator(cfg.seed, "flow-train", step))
        idx = torch.randint(0, len(self.train), (min(cfg.batch_size, len(self.train)),), generator=gen)
        prev, cur = self.prev_all[idx], self.cur_all[idx]
        if cfg.augment:
            prev, cur = _augment(prev, cur, gen)
        prev, cur = prev.to(self.device), cur.to(self.device)
        flow = self.fwd(prev, cur)
        moved = warp(prev, flow)
        mse = ((moved - cur) ** 2).mean()
        loss = mse + cfg.smooth_weight * smoothness(flow)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach(), "mse": mse.detach()}

    def after_step(self, step: int, metrics: dict[str, float]) -> dict[str, float]:
        if not (step % self.cfg.val_every == 0 or step == self.cfg.steps):
            return {}
        more = {}
        if len(self.val):
            self.net.eval()
            ev = evaluate_pairs(FlowModel(self.cfg.model, self.net, device=self.device), self.val)
            self.net.train()
            more = {"val_dice": ev["dice"], "val_dice_identity": ev["dice_identity"]}
        self.history.append({"step": step, **metrics, **more})
        return more

    def save(self, step: int) -> None:
        self.state.save(step, self.cfg.to_dict(), {"history": self.history})


def initial_flow_model(init: str) -> FlowModel:
    """The model a fine-tuning starts from: ``"bundled"`` or a flow weights file."""
    return FlowModel.default() if init == "bundled" else FlowModel.load(init)


def train_flow(
    source: str | Path | np.ndarray | MaskPairs,
    out_path: str | Path,
    config: FlowTrainConfig | None = None,
    *,
    cancel: CancelToken | None = None,
    resume: bool = True,
) -> Job[FlowModel]:
    """Train the flow model; yields :class:`Progress` (stage ``"train-flow"``) and returns the :class:`FlowModel`.

    Parameters
    ----------
    source : a CTC dataset/sequence folder or label video path, a label array ``(T, H, W)`` (tracks, or
        per-frame ids that are linked by overlap), or ready :class:`MaskPairs`.
    out_path : weights file to write (``.safetensors``); a checkpoint ``<stem>.ckpt.safetensors`` is kept
        next to it every ``checkpoint_every`` steps and on cancel, and resumed from when ``resume``.
    """
    import torch

    cfg = config or FlowTrainConfig()
    if cfg.init:
        cfg = cfg.replace(model=initial_flow_model(cfg.init).config)
    out_path = Path(out_path)
    if out_path.suffix != ".safetensors":
        raise InputError(f"weights file {out_path} must end in .safetensors")
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    yield Progress(0, cfg.steps, "collecting mask pairs", stage="train-flow")
    pairs, src_desc = _load_pairs(source, cfg)
    train, val = _split(pairs, cfg)
    ckpt = checkpoint_path(out_path)
    run = _FlowRun(cfg, train, val, ckpt)
    step = 0
    if resume and ckpt.exists():
        step = run.resume()
        yield Progress(step, cfg.steps, f"resumed from {ckpt.name} at step {step}", stage="train-flow")
    extra_base = {
        "source": src_desc,
        "train_pairs": len(train),
        "val_pairs": len(val),
        "median_cell_area": pairs.median_area(),
        "skipped_too_large": int(pairs.skipped_too_large),
        "train_config": cfg.to_dict(),
    }
    t0 = time.monotonic()
    run.net.train()
    loop = TrainingLoop(cfg.steps, step=step, stage="train-flow", message="training flow model", dist=run.dist,
                        cancel=cancel, save=run.save, checkpoint_every=cfg.checkpoint_every, checkpoint_final=False,
                        save_on_error=True, items_per_step=cfg.batch_size, rate_name="items_per_s",
                        max_seconds=cfg.max_seconds)
    yield from loop.run(run.train_step, run.after_step)
    run.net.eval()
    model = FlowModel(cfg.model, run.net.cpu(), device="cpu")
    final = evaluate_pairs(model, val) if len(val) else {}
    model.extra = {**extra_base, "validation": final, "history": run.history[-20:], "steps": loop.step,
                   "stopped_by_time": loop.stopped_by_time, "init": cfg.init,
                   "train_seconds": time.monotonic() - t0, "world_size": run.dist.world_size}
    if run.dist.is_main:  # under torchrun only rank 0 writes
        model.save(out_path)
        if ckpt.exists():
            ckpt.unlink()
    run.dist.barrier()
    yield Progress(cfg.steps, cfg.steps, "saved " + out_path.name, metrics={k: v for k, v in final.items()
                                                                           if isinstance(v, float)},
                   stage="train-flow")
    return model
