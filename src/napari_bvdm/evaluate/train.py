"""Training loop of the evaluation's segmentation network, as a job generator.

Each step draws ``batch_size`` random patches: first a pool (training set part, e.g. real or
synthetic, with equal probability), then a frame, a random crop and a random flip/rotation, and with
``augment="intensity"`` a random change of contrast, brightness, gamma, blur and noise (the same for
every training set). The same number of steps and batch size for every training set is the "same budget"
of the comparison.
Training is deterministic for a given seed (on the CPU) and sets no global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..io.video import InputError
from ..runtime.config import Config
from ..runtime.progress import CancelToken, Job
from ..runtime.seeding import numpy_rng
from ..runtime.training import TrainingLoop
from .data import Pair
from .segnet import SegNetConfig, build_segnet, make_targets, normalise_image

__all__ = ["TrainConfig", "PreparedPool", "prepare_pool", "train_segnet", "augment_intensity"]


@dataclass
class TrainConfig(Config):
    """Budget and optimiser of one training run.

    Attributes
    ----------
    steps : optimiser steps.
    batch_size : patches per step.
    patch_size : square patch side in pixels (frames smaller than this are padded).
    lr : Adam learning rate (cosine decay to 5 % over the run).
    boundary_weight : cross-entropy weight of the boundary class (background and interior: 1).
    seed : drives initialisation and sampling.
    device : ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    report_every : steps between progress events.
    augment : ``none`` (flips and rotations only) or ``intensity``: each patch also gets, at random, a
        contrast/brightness change (p 0.8, x 0.7-1.3, +-0.15 of the normalised range), a gamma (p 0.3,
        0.7-1.5), a Gaussian blur (p 0.2, sigma 0.5-1.0) and Gaussian noise (p 0.3, sd up to 0.05): the
        usual intensity augmentation of cell segmentation networks, so that a network keys less on one
        training set's exact intensities.
    """

    steps: int = 300
    batch_size: int = 8
    patch_size: int = 128
    lr: float = 2e-3
    boundary_weight: float = 2.0
    seed: int = 0
    device: str = "auto"
    report_every: int = 5
    augment: Literal["none", "intensity"] = "none"

    def check(self) -> None:
        self._require(self.steps >= 1, "steps", "must be >= 1")
        self._require(self.batch_size >= 1, "batch_size", "must be >= 1")
        self._require(self.patch_size >= 16, "patch_size", "must be >= 16")
        self._require(self.lr > 0, "lr", "must be > 0")
        self._require(self.boundary_weight > 0, "boundary_weight", "must be > 0")
        self._require(self.report_every >= 1, "report_every", "must be >= 1")
        self._require(self.augment in ("none", "intensity"), "augment", "must be none or intensity")


@dataclass
class PreparedPool:
    """Normalised images and class targets of one part of a training set."""

    name: str
    images: list[np.ndarray]
    targets: list[np.ndarray]


def prepare_pool(name: str, pairs: Sequence[Pair], net: SegNetConfig) -> PreparedPool:
    """Normalise images and compute targets once, before training."""
    if not pairs:
        raise InputError(f"training pool {name!r} is empty")
    return PreparedPool(
        name,
        [normalise_image(p.image, net.p_low, net.p_high) for p in pairs],
        [make_targets(p.instances, p.ignore).astype(np.int8) for p in pairs],
    )


def _patch(img: np.ndarray, tgt: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        img = np.pad(img, ((0, ph), (0, pw)), mode="constant", constant_values=float(np.median(img)))
        tgt = np.pad(tgt, ((0, ph), (0, pw)), mode="constant", constant_values=-1)
        h, w = img.shape
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    a, b = img[y : y + size, x : x + size], tgt[y : y + size, x : x + size]
    k = int(rng.integers(0, 4))
    a, b = np.rot90(a, k), np.rot90(b, k)
    if rng.random() < 0.5:
        a, b = a[:, ::-1], b[:, ::-1]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def augment_intensity(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random intensity change of a normalised patch (see :class:`TrainConfig` ``augment``); float32."""
    from scipy.ndimage import gaussian_filter

    a = img.astype(np.float32, copy=True)
    if rng.random() < 0.8:
        a = a * np.float32(rng.uniform(0.7, 1.3)) + np.float32(rng.uniform(-0.15, 0.15))
    if rng.random() < 0.3:
        lo, hi = float(a.min()), float(a.max())
        if hi > lo:
            a = ((a - lo) / (hi - lo)) ** np.float32(np.exp(rng.uniform(np.log(0.7), np.log(1.5)))) * (hi - lo) + lo
    if rng.random() < 0.2:
        a = gaussian_filter(a, float(rng.uniform(0.5, 1.0)))
    if rng.random() < 0.3:
        a = a + rng.normal(0.0, rng.uniform(0.0, 0.05), a.shape).astype(np.float32)
    return a.astype(np.float32, copy=False)


def _weights(w: Sequence[float], n: int) -> np.ndarray:
    p = np.asarray(w, float)
    if p.shape != (n,) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise InputError(f"pool weights {list(w)!r} must be {n} non-negative numbers, not all 0")
    return p / p.sum()


def _phase_schedule(
    n_pools: int,
    steps: int,
    weights: Sequence[float] | None,
    phases: Sequence[tuple[float, Sequence[float]]] | None,
) -> list[np.ndarray]:
    """Pool probabilities for every step (one entry per step); ``weights`` alone is one phase."""
    if phases is None:
        phases = [(1.0, [1.0] * n_pools if weights is None else weights)]
    if not phases:
        raise InputError("phases must name at least one (share, weights) phase")
    shares = np.asarray([float(sh) for sh, _ in phases])
    if not np.all(np.isfinite(shares)) or np.any(shares < 0) or shares.sum() <= 0:
        raise InputError(f"phase shares {shares.tolist()} must be non-negative numbers, not all 0")
    ends = np.round(np.cumsum(shares) / shares.sum() * steps).astype(int)
    probs = [_weights(w, n_pools) for _, w in phases]
    out: list[np.ndarray] = []
    start = 0
    for end, p in zip(ends, probs, strict=True):
        out += [p] * (int(end) - start)
        start = int(end)
    return out


def train_segnet(
    pools: Sequence[PreparedPool],
    net: SegNetConfig,
    config: TrainConfig,
    *,
    weights: Sequence[float] | None = None,
    phases: Sequence[tuple[float, Sequence[float]]] | None = None,
    cancel: CancelToken | None = None,
) -> Job:
    """Job: train a fresh :func:`build_segnet` model on ``pools``; returns the model (eval mode).

    Parameters
    ----------
    pools : training data, one pool per part (e.g. ``[real]`` or ``[real, synthetic]``).
    weights : probability of drawing each pool (default: equal).
    phases : instead of ``weights``, a curriculum: ``(share of the steps, pool weights)`` per phase, in
        order, e.g. ``[(0.5, (0, 1)), (0.5, (1, 0))]`` = the second pool for the first half of the steps,
        then the first pool only (pre-training, then fine-tuning, under one learning-rate schedule).
    cancel : checked between steps; raises :class:`~napari_bvdm.runtime.progress.Cancelled`.
    """
    import torch

    from ..runtime.device import resolve_device

    if not pools:
        raise InputError("no training data: give at least one non-empty pool")
    if phases is not None and weights is not None:
        raise InputError("give pool weights or phases, not both")
    step_probs = _phase_schedule(len(pools), config.steps, weights, phases)
    device = resolve_device(config.device)
    rng = numpy_rng(config.seed, "evaluate-train")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(0, 2**62)))
        model = build_segnet(net).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps, eta_min=config.lr * 0.05)
    cw = torch.tensor([1.0, 1.0, config.boundary_weight], device=device)

    def train_step(step: int) -> dict[str, float]:
        x, y = _batch(pools, step_probs[step], config, rng)
        logits = model(x.to(device))
        y = y.to(device)
        if bool((y >= 0).any()):
            loss = torch.nn.functional.cross_entropy(logits, y, weight=cw, ignore_index=-1)
        else:  # every pixel ignored: no gradient, but keep the step (and the random streams) aligned
            loss = logits.sum() * 0.0
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return {"loss": float(loss.detach())}

    model.train()
    loop = TrainingLoop(config.steps, stage="train", cancel=cancel, report_every=config.report_every,
                        message=f"training segmentation net ({', '.join(pl.name for pl in pools)})",
                        rate_name="steps_per_s")
    yield from loop.run(train_step)
    model.eval()
    return model


def _batch(pools: Sequence[PreparedPool], p: np.ndarray, config: TrainConfig, rng: np.random.Generator):
    """``batch_size`` random patches (a pool drawn with probabilities ``p``, then a frame) as tensors."""
    import torch

    xs, ys = [], []
    for _ in range(config.batch_size):
        pool = pools[int(rng.choice(len(pools), p=p))]
        i = int(rng.integers(0, len(pool.images)))
        a, b = _patch(pool.images[i], pool.targets[i], config.patch_size, rng)
        if config.augment == "intensity":
            a = augment_intensity(a, rng)
        xs.append(a)
        ys.append(b)
    return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys).astype(np.int64))
