"""Texture-model training job and CLI on real GOWT1 crops with a tiny UNet (a few steps each)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_bvdm.cli import main
from napari_bvdm.runtime.config import ConfigError
from napari_bvdm.runtime.progress import Cancelled, CancelToken, run_job
from napari_bvdm.texture.crops import load_ctc_crops
from napari_bvdm.texture.model import TextureModel, TextureModelConfig
from napari_bvdm.texture.profile import RimProfile
from napari_bvdm.texture.train import TrainConfig, checkpoint_path_for, load_checkpoint_model, train_texture
from napari_bvdm.texture.unet import UNetConfig

TINY = TextureModelConfig(unet=UNetConfig(width=4, depth=3, t_channels=16), crop_size=96)
FAST = TrainConfig(steps=4, batch_size=2, val_every=2, checkpoint_every=2, val_t=(50,), device="cpu",
                   val_fraction=0.2)


@pytest.fixture(scope="module")
def crops():
    from conftest import data_path

    return load_ctc_crops(data_path("Fluo-N2DH-GOWT1", "01"))


def _weights(m: TextureModel) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in m.net.parameters()])


def test_training_yields_metrics_and_is_deterministic(crops, tmp_path):
    events = []
    m1 = run_job(train_texture(crops, TINY, FAST, checkpoint=tmp_path / "a.ckpt.safetensors"), events.append)
    assert [e.step for e in events] == [0, 1, 2, 3, 4]
    last = events[-1].metrics
    assert np.isfinite(last["loss"]) and np.isfinite(last["val_loss"]) and last["crops_per_s"] > 0
    assert last["eta_s"] == 0
    m2 = run_job(train_texture(crops, TINY, FAST))
    assert torch.equal(_weights(m1), _weights(m2))  # same seed, same weights
    assert m1.info["val_tracks"] and m1.normalisation == crops.normalisation


@pytest.mark.slow
def test_cancel_keeps_a_checkpoint_and_resume_continues_exactly(crops, tmp_path):
    straight = run_job(train_texture(crops, TINY, FAST))
    ckpt = tmp_path / "run.ckpt.safetensors"
    token = CancelToken()

    def cancel_at_3(ev):
        if ev.step == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        run_job(train_texture(crops, TINY, FAST, checkpoint=ckpt, cancel=token), cancel_at_3)
    assert load_checkpoint_model(ckpt).info["steps"] == 3
    # the real cells' rim profile travels with the checkpoint and the model (docs/texture.md#rim-profile)
    assert load_checkpoint_model(ckpt).profile == straight.profile == RimProfile.from_crops(crops)
    steps = []
    resumed = run_job(train_texture(crops, TINY, FAST, checkpoint=ckpt, resume=True), lambda e: steps.append(e.step))
    assert steps == [3, 4]
    assert torch.allclose(_weights(resumed), _weights(straight), atol=1e-6)
    # closing the generator (GUI quit / Ctrl-C) also leaves a valid checkpoint
    job = train_texture(crops, TINY, FAST.replace(steps=6), checkpoint=ckpt, resume=True)
    next(job), next(job)
    job.close()
    assert load_checkpoint_model(ckpt).info["steps"] == 5
    with pytest.raises(ConfigError, match="training settings differ"):
        run_job(train_texture(crops, TINY, FAST.replace(lr=0.01, steps=8), checkpoint=ckpt, resume=True))
    with pytest.raises(ConfigError, match="model settings"):
        run_job(train_texture(crops, TINY.replace(unet={"width": 8, "depth": 3, "t_channels": 16}), FAST,
                              checkpoint=ckpt, resume=True))
    with pytest.raises(ConfigError, match="other data"):
        run_job(train_texture(crops.subset(np.arange(60)), TINY, FAST.replace(steps=8), checkpoint=ckpt,
                              resume=True))
    with pytest.raises(ConfigError, match="does not exist"):
        run_job(train_texture(crops, TINY, FAST, checkpoint=tmp_path / "none.safetensors", resume=True))


@pytest.mark.slow
def test_time_limit_stops_between_steps_keeps_checkpoint_and_resumes(crops, tmp_path):
    import time

    straight = run_job(train_texture(crops, TINY, FAST))
    ckpt = tmp_path / "run.ckpt.safetensors"

    def slow_after_2(ev):  # the generator is paused while the callback sleeps: training time passes
        if ev.step == 2:
            time.sleep(2.5)

    model = run_job(train_texture(crops, TINY, FAST.replace(max_seconds=2.0), checkpoint=ckpt), slow_after_2)
    assert model.info["steps"] == 2 and model.info["stopped_by_time"] is True
    assert np.isfinite(model.info["final_val_loss"])
    assert load_checkpoint_model(ckpt).info["steps"] == 2
    steps = []  # the limit may change on resume; without one the run goes on to its step count
    resumed = run_job(train_texture(crops, TINY, FAST, checkpoint=ckpt, resume=True), lambda e: steps.append(e.step))
    assert steps == [2, 3, 4] and "stopped_by_time" not in resumed.info
    assert torch.allclose(_weights(resumed), _weights(straight), atol=1e-6)
    with pytest.raises(ConfigError, match="max_seconds"):
        TrainConfig(max_seconds=-1.0)


def test_mask_conditioned_variant_trains(crops):
    cfg = TINY.replace(unet={"width": 4, "depth": 3, "t_channels": 16, "mask_channel": True})
    m = run_job(train_texture(crops, cfg, FAST.replace(steps=2)))
    assert m.mask_conditioned and m.net.stem.in_channels == 2


@pytest.mark.slow
def test_cli_train_texture_writes_weights_and_resumes(tmp_path, capsys):
    from conftest import data_path

    src = data_path("Fluo-N2DH-GOWT1", "01")
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"texture": {"model": {"unet": {"width": 4, "t_channels": 16}},
                                                "train": {"batch_size": 2, "val_every": 1, "val_t": [50]}}}))
    out = tmp_path / "tex.safetensors"
    assert main(["train-texture", str(src), "-o", str(out), "--steps", "2", "--device", "cpu", "--quiet",
                 "--settings", str(settings)]) == 0
    m = TextureModel.load(out)
    assert m.info["steps"] == 2 and m.config.unet.width == 4 and checkpoint_path_for(out).is_file()
    assert m.profile is not None and m.profile.cells > 100 and m.profile.values[0] < m.profile.values[3]
    assert main(["train-texture", str(src), "-o", str(out), "--steps", "3", "--resume", "--quiet",
                 "--settings", str(settings)]) == 0
    assert TextureModel.load(out).info["steps"] == 3
    # bad input ends with exit status 2 and a one-line reason
    assert main(["train-texture", str(tmp_path / "nothing"), "-o", str(out), "--quiet"]) == 2
    assert "nothing" in capsys.readouterr().err
