"""The shared training loop (runtime/training.py) on a toy regression: events, EMA, checkpoints, resume, stops."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from ddp_helpers import spawn_ranks
from napari_bvdm.runtime.distributed import DistContext
from napari_bvdm.runtime.progress import Cancelled, CancelToken, run_job
from napari_bvdm.runtime.training import EMA, Checkpoint, TrainingError, TrainingLoop
from napari_bvdm.runtime.weights import read_metadata

KIND = "toy-checkpoint"


class _Toy:
    """A linear net, Adam, a seeded batch stream, an EMA and their checkpoint."""

    def __init__(self, path=None, init_seed: int = 0, decay: float = 0.9) -> None:
        torch.manual_seed(init_seed)
        self.net = torch.nn.Linear(3, 1)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=0.05)
        self.gen = torch.Generator().manual_seed(1)
        self.ema = EMA(self.net, decay)
        self.state = Checkpoint(path or "unused", KIND, {"net": self.net, "ema": self.ema.module},
                                optimizer=self.opt, generator=self.gen)
        self.saved: list[int] = []
        self.path = path

    def step(self, _: int) -> dict[str, torch.Tensor]:
        x = torch.randn(8, 3, generator=self.gen)
        loss = ((self.net(x) - x.sum(1, keepdim=True)) ** 2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach(), "half": loss.detach() / 2}

    def save(self, step: int) -> None:
        self.saved.append(step)
        if self.path is not None:
            self.state.save(step, {"lr": 0.05}, {"history": list(self.saved)})

    def loop(self, total: int, **kw) -> TrainingLoop:
        kw.setdefault("save", self.save)
        return TrainingLoop(total, ema=self.ema, items_per_step=8, rate_name="items_per_s", **kw)

    def weights(self) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in [*self.net.parameters(), *self.ema.module.parameters()]])


def test_events_carry_averaged_metrics_rate_and_eta():
    toy = _Toy()
    events = []
    loop = toy.loop(5, stage="train-toy", message="toy")
    assert run_job(loop.run(toy.step), events.append) == 5
    assert [e.step for e in events] == [1, 2, 3, 4, 5]
    assert all(e.stage == "train-toy" and e.message == "toy" and e.total == 5 for e in events)
    assert list(events[0].metrics) == ["loss", "half", "items_per_s", "eta_s"]
    assert all(e.metrics["half"] == pytest.approx(e.metrics["loss"] / 2) for e in events)
    assert events[-1].metrics["eta_s"] == 0 and events[0].metrics["eta_s"] > 0
    assert all(e.metrics["items_per_s"] > 0 for e in events)
    # report_every: fewer events; each one's loss is the mean of the last report_every losses
    per_step = [e.metrics["loss"] for e in events]
    toy2, events2 = _Toy(), []
    run_job(toy2.loop(5, report_every=2).run(toy2.step), events2.append)
    assert [e.step for e in events2] == [2, 4, 5]
    assert [e.metrics["loss"] for e in events2] == [float(np.mean(per_step[0:2])), float(np.mean(per_step[2:4])),
                                                    float(np.mean(per_step[3:5]))]


def test_after_step_adds_metrics_and_sees_the_averaged_ones():
    toy = _Toy()
    seen = []

    def after(step, metrics):
        seen.append((step, sorted(metrics)))
        return {"val": float(step)} if step % 2 == 0 else None

    events = []
    run_job(toy.loop(4).run(toy.step, after), events.append)
    assert seen == [(s, ["half", "items_per_s", "loss"]) for s in (1, 2, 3, 4)]
    assert [e.metrics.get("val") for e in events] == [None, 2.0, None, 4.0]


def test_ema_warms_up_and_copies_buffers():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(net, 0.999)
    assert ema.module is not net and torch.equal(ema.module[0].weight, net[0].weight)
    old = ema.module[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.fill_(3.0)
    ema.update(1)
    d = 2 / 11  # min(0.999, (1 + step) / (10 + step))
    assert ema.rate(1) == pytest.approx(d) and ema.rate(10**6) == 0.999
    assert torch.allclose(ema.module[0].weight, d * old + (1 - d) * net[0].weight)
    assert torch.equal(ema.module[1].running_mean, net[1].running_mean)
    plain = EMA(net, 0.0)  # decay 0: a plain copy of the network after every step
    with torch.no_grad():
        net[0].weight.mul_(2)
    plain.update(5)
    assert torch.equal(plain.module[0].weight, net[0].weight)


def test_periodic_checkpoints_and_exact_resume_after_cancel(tmp_path):
    straight = _Toy()
    run_job(straight.loop(6, checkpoint_every=2).run(straight.step))
    assert straight.saved == [2, 4, 6]
    ckpt = tmp_path / "toy.ckpt.safetensors"
    first, token = _Toy(ckpt), CancelToken()

    def cancel_at_3(ev):
        if ev.step == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        run_job(first.loop(6, checkpoint_every=2, cancel=token).run(first.step), cancel_at_3)
    assert first.saved == [2, 3]  # the cancel keeps the step reached
    meta = read_metadata(ckpt)
    assert meta["kind"] == KIND and meta["extra"]["step"] == 3 and meta["extra"]["history"] == [2, 3]
    assert meta["config"] == {"lr": 0.05} and meta["extra"]["param_groups"][0]["lr"] == 0.05
    resumed = _Toy(ckpt, init_seed=99)  # other initial weights and stream: all restored from the file
    step, extra = resumed.state.restore()
    assert step == 3 and extra["history"] == [2, 3]
    steps = []
    run_job(resumed.loop(6, step=step, checkpoint_every=2).run(resumed.step), lambda e: steps.append(e.step))
    assert steps == [4, 5, 6]
    assert torch.equal(resumed.weights(), straight.weights())  # bit for bit: net, EMA, Adam state, stream


def test_closing_the_job_keeps_a_checkpoint_and_final_save_is_optional(tmp_path):
    toy = _Toy(tmp_path / "c.safetensors")
    job = toy.loop(10, checkpoint_every=4).run(toy.step)
    next(job), next(job), next(job)
    job.close()  # GUI quit / Ctrl-C
    assert toy.saved == [3] and read_metadata(tmp_path / "c.safetensors")["extra"]["step"] == 3
    toy = _Toy()
    run_job(toy.loop(4, checkpoint_every=2, checkpoint_final=False).run(toy.step))
    assert toy.saved == [2]  # the trainer writes its weights itself at the end
    toy = _Toy()
    run_job(toy.loop(4, checkpoint_every=0).run(toy.step))
    assert toy.saved == [4]
    toy = _Toy()
    run_job(toy.loop(3, save=None).run(toy.step))  # no checkpoint at all
    assert toy.saved == []


def test_time_limit_stops_between_steps_and_checkpoints(tmp_path):
    toy = _Toy()
    order = []

    def slow_after_2(ev):  # the generator is paused while the callback sleeps: time passes for the loop
        if ev.step == 2:
            time.sleep(1.3)

    def on_limit(step):
        order.append(("limit", step, list(toy.saved)))

    loop = toy.loop(10, max_seconds=1.0, checkpoint_every=5)
    assert run_job(loop.run(toy.step, on_time_limit=on_limit), slow_after_2) == 2
    assert loop.stopped_by_time and loop.step == 2
    assert order == [("limit", 2, [])] and toy.saved == [2]  # the hook runs before the checkpoint
    toy = _Toy()
    loop = toy.loop(3, max_seconds=1000.0)
    run_job(loop.run(toy.step))
    assert not loop.stopped_by_time and loop.step == 3


def test_errors_non_finite_loss_and_only_the_main_rank_saves():
    toy = _Toy()

    def nan_at_3(i):
        out = toy.step(i)
        return {"loss": torch.tensor(float("nan"))} if i == 2 else out

    with pytest.raises(TrainingError, match="loss became nan at step 3"):
        run_job(toy.loop(5, checkpoint_every=10, check_finite=True).run(nan_at_3))
    assert toy.saved == []  # a diverged state is not written over the last checkpoint

    def fail_at_3(i):
        if i == 2:
            raise ValueError("broken batch")
        return toy.step(i)

    toy.saved.clear()
    with pytest.raises(ValueError):
        run_job(toy.loop(5, checkpoint_every=10).run(fail_at_3))
    assert toy.saved == []
    with pytest.raises(ValueError):
        run_job(toy.loop(5, checkpoint_every=10, save_on_error=True).run(fail_at_3))
    assert toy.saved == [2]

    class Rank1(DistContext):  # a second rank of a run (no process group needed here)
        def mean(self, value: float) -> float:
            return float(value)

    toy = _Toy()
    run_job(toy.loop(4, checkpoint_every=2, dist=Rank1(world_size=2, rank=1)).run(toy.step))
    assert toy.saved == []


def test_restore_can_keep_the_optimiser_settings(tmp_path):
    toy = _Toy(tmp_path / "o.safetensors")
    run_job(toy.loop(2, checkpoint_every=2).run(toy.step))
    other = _Toy(tmp_path / "o.safetensors", init_seed=5)
    for g in other.opt.param_groups:
        g["lr"] = 0.5
    step, _ = other.state.restore(param_groups=False)
    assert step == 2 and other.opt.param_groups[0]["lr"] == 0.5
    assert torch.equal(other.opt.state_dict()["state"][0]["exp_avg"], toy.opt.state_dict()["state"][0]["exp_avg"])
    step, _ = other.state.restore()
    assert other.opt.param_groups[0]["lr"] == 0.05


def _two_ranks(rank: int, out) -> None:
    from napari_bvdm.runtime.distributed import setup

    dist = setup()  # already joined by spawn_ranks: returns this rank's context
    saved = []

    def step(i):
        if rank == 1 and i == 1:
            time.sleep(1.3)  # only rank 1 runs over the limit
        return {"loss": float(rank)}

    loop = TrainingLoop(10, dist=dist, max_seconds=1.0, save=saved.append, checkpoint_every=1)
    events = list(loop.run(step))
    out[rank] = (loop.step, loop.stopped_by_time, saved, [e.metrics["loss"] for e in events])


@pytest.mark.slow
def test_two_ranks_average_metrics_stop_together_and_only_rank_0_saves():
    out = spawn_ranks(_two_ranks)
    (step0, stop0, saved0, loss0), (step1, stop1, saved1, loss1) = out[0], out[1]
    assert stop0 and stop1 and step0 == step1 == 2  # rank 0 was in time, but stops at the same step
    assert saved0 == [1, 2, 2] and saved1 == []
    assert loss0 == loss1 == [0.5, 0.5]


@pytest.mark.slow
def test_fine_tuning_starts_from_the_bundled_models_and_stops_on_time(gowt1, tmp_path):
    """``init="bundled"`` starts from the shipped weights (not random ones); ``max_seconds`` bounds the run."""
    import numpy as np

    from napari_bvdm.flow.model import FlowModel
    from napari_bvdm.flow.train import FlowTrainConfig, train_flow
    from napari_bvdm.io.readers import read_ctc
    from napari_bvdm.runtime.progress import run_job
    from napari_bvdm.texture.crops import extract_crops
    from napari_bvdm.texture.model import TextureModel
    from napari_bvdm.texture.train import TrainConfig, train_texture

    v = read_ctc(gowt1 / "01").frames(0, 6)
    tra = np.asarray(v.labels["TRA"])
    base = TextureModel.default()
    crops = extract_crops(np.asarray(v.image), np.asarray(v.dense_labels()[1]), tracks=tra,
                          crop_size=base.config.crop_size)
    common = dict(steps=10**6, batch_size=4, max_seconds=2, num_threads=1, val_every=10**6, checkpoint_every=10**6)
    tuned = run_job(train_texture(crops, config=TrainConfig(init="bundled", **common)))
    scratch = run_job(train_texture(crops, base.config, TrainConfig(**common)))
    assert tuned.info["stopped_by_time"] and tuned.info["steps"] < 10**6
    assert tuned.config == base.config
    assert tuned.info["final_val_loss"] < 0.5 * scratch.info["final_val_loss"]  # started trained, not random
    flow = run_job(train_flow(tra, tmp_path / "flow.safetensors", FlowTrainConfig(
        init="bundled", steps=10**6, batch_size=4, max_seconds=2, threads=1, val_every=10**6,
        checkpoint_every=10**6)))
    assert flow.extra["stopped_by_time"] and flow.config == FlowModel.default().config
    assert flow.extra["validation"]["dice"] > 0.9
