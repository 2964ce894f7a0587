"""Flow training under DistributedDataParallel (what `torchrun` does): 2 gloo processes on the CPU."""

from __future__ import annotations

import os

import numpy as np
import torch

from ddp_helpers import flat_weights, spawn_ranks
from napari_bvdm.flow.model import FlowConfig
from napari_bvdm.flow.train import FlowTrainConfig, train_flow
from napari_bvdm.runtime.progress import run_job


def _labels() -> np.ndarray:
    t, h, w = 6, 128, 128
    yy, xx = np.mgrid[:h, :w]
    lab = np.zeros((t, h, w), np.uint16)
    for k, (cy, cx) in enumerate([(30, 30), (30, 90), (90, 30), (90, 90)], start=1):
        for f in range(t):
            lab[f][((yy - cy - f) / (10 + f % 3)) ** 2 + ((xx - cx + f) / 12) ** 2 <= 1] = k
    return lab


CFG = FlowTrainConfig(steps=3, batch_size=2, val_every=3, checkpoint_every=1, device="cpu", val_fraction=0.25,
                      model=FlowConfig(crop_size=32))


def _train(rank: int, tmp: str, out) -> None:
    model = run_job(train_flow(_labels(), os.path.join(tmp, "flow.safetensors"), CFG))
    out[rank] = flat_weights(model.net)
    out[f"world{rank}"] = model.extra["world_size"]


def test_two_rank_flow_training_stays_in_sync(tmp_path):
    out = spawn_ranks(_train, str(tmp_path))
    assert out["world0"] == out["world1"] == 2
    assert torch.equal(out[0], out[1])  # replicas identical
    assert (tmp_path / "flow.safetensors").exists()  # written once, by rank 0
    single = run_job(train_flow(_labels(), tmp_path / "single.safetensors", CFG))
    assert not torch.equal(out[0], flat_weights(single.net))
