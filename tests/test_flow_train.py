"""Flow training loop: learns real motion better than identity, seeded, checkpoint/resume, cancel, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_bvdm.flow import FlowConfig, FlowModel
from napari_bvdm.flow.train import FlowTrainConfig, checkpoint_path, evaluate_pairs, train_flow
from napari_bvdm.runtime.progress import Cancelled, CancelToken, run_job

TINY = FlowConfig(encoder=(8, 16), decoder=(16, 16, 8), crop_size=32)


def _ellipses(n_frames: int = 14, seed: int = 0) -> np.ndarray:
    """Tracked label video of 4 ellipses that move and stretch (clearly non-rigid motion)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:96, :96]
    lab = np.zeros((n_frames, 96, 96), np.uint16)
    params = [(20 + 50 * (k // 2), 20 + 50 * (k % 2), rng.uniform(6, 9), rng.uniform(6, 9)) for k in range(4)]
    for t in range(n_frames):
        for k, (cy, cx, a, b) in enumerate(params):
            a_t = a * (1 + 0.06 * np.sin(t + k))
            b_t = b * (1 - 0.06 * np.sin(t + k))
            m = ((yy - cy - 0.7 * t) / a_t) ** 2 + ((xx - cx) / b_t) ** 2 <= 1
            lab[t][m] = k + 1
    return lab


def _cfg(**kw) -> FlowTrainConfig:
    base = dict(steps=60, batch_size=8, lr=3e-3, val_fraction=0.25, val_every=30, checkpoint_every=20,
                seed=3, device="cpu", model=TINY.to_dict())
    base.update(kw)
    return FlowTrainConfig.from_dict(base)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_training_beats_identity_and_saves_provenance(tmp_path):
    events = []
    model = run_job(train_flow(_ellipses(), tmp_path / "f.safetensors", _cfg()), events.append)
    v = model.extra["validation"]
    assert v["dice"] > v["dice_identity"] + 0.01
    assert events[-1].stage == "train-flow" and events[-1].step == 60
    assert any("val_dice" in e.metrics for e in events)
    loaded = FlowModel.load(tmp_path / "f.safetensors")
    assert loaded.config == TINY and loaded.extra["train_pairs"] > 0 and loaded.extra["median_cell_area"] > 100
    assert not checkpoint_path(tmp_path / "f.safetensors").exists()  # removed after the final save


def test_same_seed_same_weights_and_resume_is_exact(tmp_path):
    labels = _ellipses()
    a = run_job(train_flow(labels, tmp_path / "a.safetensors", _cfg(steps=40)))
    # cancel half way: a checkpoint is left; resuming reproduces the uninterrupted run exactly
    token = CancelToken()
    job = train_flow(labels, tmp_path / "b.safetensors", _cfg(steps=40), cancel=token)
    with pytest.raises(Cancelled):
        for ev in job:
            if ev.step == 25:
                token.cancel()
    assert checkpoint_path(tmp_path / "b.safetensors").exists()
    assert not (tmp_path / "b.safetensors").exists()
    events = []
    b = run_job(train_flow(labels, tmp_path / "b.safetensors", _cfg(steps=40)), events.append)
    assert any("resumed" in e.message for e in events)
    for (k, pa), pb in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6), k


def test_closing_the_generator_keeps_a_checkpoint(tmp_path):
    job = train_flow(_ellipses(), tmp_path / "c.safetensors", _cfg(steps=40))
    for ev in job:
        if ev.step == 5:
            break
    job.close()
    assert checkpoint_path(tmp_path / "c.safetensors").exists()


def test_evaluate_pairs_baselines_on_pure_translation():
    from napari_bvdm.flow.pairs import mask_pairs

    lab = np.zeros((2, 64, 64), np.uint16)
    lab[0, 10:30, 10:20] = 1
    lab[1, 10:30, 10:20] = 1
    pairs = mask_pairs(lab, 32, tracked=True)
    r = evaluate_pairs(FlowModel(TINY), pairs)
    assert r["dice_identity"] == pytest.approx(1.0) and r["dice_centroid_shift"] == pytest.approx(1.0)


def test_cli_train_flow(tmp_path, capsys):
    import json

    import tifffile

    from napari_bvdm.cli import main

    tifffile.imwrite(tmp_path / "labels.tif", _ellipses())
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"train_flow": {"model": TINY.to_dict(), "val_every": 10}}))
    out = tmp_path / "flow.safetensors"
    rc = main(["train-flow", str(tmp_path / "labels.tif"), "-o", str(out), "--steps", "10", "--batch-size", "4",
               "--settings", str(settings), "--quiet", "--device", "cpu"])
    assert rc == 0 and out.exists()
    assert "validation Dice" in capsys.readouterr().out
    assert main(["train-flow", str(tmp_path / "missing"), "-o", str(out), "--quiet"]) == 2
    assert main(["train-flow", str(tmp_path / "labels.tif"), "-o", str(tmp_path / "x.pt"), "--quiet"]) == 2
