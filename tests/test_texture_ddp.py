"""Texture training under DistributedDataParallel (what `torchrun` does): 2 gloo processes on the CPU.

Both ranks end with identical weights (gradients averaged), only rank 0 writes the checkpoint, and the run
differs from a single-process run (each rank draws its own batches).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ddp_helpers import flat_weights, spawn_ranks
from napari_bvdm.runtime.progress import run_job
from napari_bvdm.texture.crops import extract_crops
from napari_bvdm.texture.model import TextureModelConfig
from napari_bvdm.texture.train import TrainConfig, train_texture
from napari_bvdm.texture.unet import UNetConfig

TINY = TextureModelConfig(unet=UNetConfig(width=4, depth=2, t_channels=8), crop_size=32)
FAST = TrainConfig(steps=3, batch_size=2, val_every=3, checkpoint_every=1, val_t=(50,), device="cpu",
                   val_fraction=0.25)


def _toy_crops():
    rng = np.random.default_rng(0)
    t, h, w = 8, 96, 96
    image = rng.normal(100, 5, (t, h, w)).astype(np.float32)
    labels = np.zeros((t, h, w), np.uint16)
    yy, xx = np.mgrid[:h, :w]
    for k, (cy, cx) in enumerate([(20, 20), (20, 70), (70, 20), (70, 70)], start=1):
        for f in range(t):
            disc = (yy - cy - f) ** 2 + (xx - cx) ** 2 <= 64
            labels[f][disc] = k
            image[f][disc] += 400 + 50 * k + rng.normal(0, 20, disc.sum())
    image = np.clip(image, 0, 65535).astype(np.uint16)
    return extract_crops(image, labels, crop_size=32, min_area=20)


def _train(rank: int, tmp: str, out) -> None:
    model = run_job(train_texture(_toy_crops(), TINY, FAST, checkpoint=os.path.join(tmp, f"r{rank}.ckpt")))
    out[rank] = flat_weights(model.net)
    out[f"world{rank}"] = model.info["world_size"]


def test_two_rank_training_stays_in_sync(tmp_path):
    crops = _toy_crops()
    assert len(crops) >= 32
    out = spawn_ranks(_train, str(tmp_path))
    assert out["world0"] == out["world1"] == 2
    assert torch.equal(out[0], out[1])  # DDP keeps the replicas identical
    assert (tmp_path / "r0.ckpt").exists() and not (tmp_path / "r1.ckpt").exists()  # only rank 0 writes
    single = run_job(train_texture(crops, TINY, FAST))
    assert not torch.equal(out[0], flat_weights(single.net))
