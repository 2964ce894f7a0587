"""One training loop for every trainer: steps, progress, EMA, checkpoints, resume, cancel, time limit, DDP.

A trainer writes *what one step does* and hands it to :class:`TrainingLoop`::

    ema = EMA(net, decay=0.999)
    ckpt = Checkpoint(path, "my-checkpoint", {"net": net, "ema": ema.module}, optimizer=opt, generator=gen)
    if resume:
        step, extra = ckpt.restore()
    loop = TrainingLoop(steps, step=step, dist=dist, ema=ema, cancel=cancel, max_seconds=60,
                        save=lambda s: ckpt.save(s, config, {"history": history}), checkpoint_every=100)
    yield from loop.run(lambda i: {"loss": one_step(i)}, after_step=validate)

``run`` yields :class:`~napari_bvdm.runtime.progress.Progress` events (the step's metrics averaged over
ranks, the throughput ``<rate_name>`` and ``eta_s``) and returns the step reached. Between steps it checks the
:class:`~napari_bvdm.runtime.progress.CancelToken` and the time limit (every rank stops at the same step); it
saves a checkpoint every ``checkpoint_every`` steps, when the time limit stops the run, and when the job is
cancelled, closed (``GeneratorExit``) or interrupted, always on the main rank only. Checkpoints are
safetensors files written by :func:`~napari_bvdm.runtime.weights.save_weights`: tensors ``<prefix>.<name>``
per module, ``opt.<param id>.<name>`` for the optimiser state, ``gen_state`` for a random generator, and the
JSON extras ``step`` and ``param_groups`` next to the trainer's own.

Torch is imported lazily, so that importing a trainer's config stays light.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import Any

from .distributed import DistContext
from .progress import Cancelled, CancelToken, Progress
from .weights import load_weights, save_weights

__all__ = ["TrainingError", "EMA", "Checkpoint", "TrainingLoop", "optimizer_tensors", "load_optimizer",
           "optimizer_to"]

StepMetrics = Mapping[str, Any]


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. out of accelerator memory); the last checkpoint is kept."""


class EMA:
    """Exponential moving average of a network's weights (buffers are copied).

    The decay warms up as ``min(decay, (1 + step) / (10 + step))``; ``decay=0`` keeps a plain copy of the
    network. ``module`` is the averaged network (a deep copy of ``net`` when made).
    """

    def __init__(self, net, decay: float) -> None:
        self.net = net
        self.decay = float(decay)
        self.module = copy.deepcopy(net)

    def rate(self, step: int) -> float:
        """The decay used after optimiser step ``step``."""
        return min(self.decay, (1 + step) / (10 + step)) if self.decay > 0 else 0.0

    def update(self, step: int) -> None:
        import torch

        d = self.rate(step)
        with torch.no_grad():
            for pe, p in zip(self.module.parameters(), self.net.parameters(), strict=True):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
            for be, b in zip(self.module.buffers(), self.net.buffers(), strict=True):
                be.copy_(b)


def optimizer_tensors(opt) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An optimiser's state as tensors ``opt.<param id>.<name>`` and its JSON-able param groups."""
    import torch

    sd = opt.state_dict()
    tensors = {f"opt.{pid}.{k}": torch.as_tensor(v).clone() for pid, st in sd["state"].items()
               for k, v in st.items()}
    return tensors, sd["param_groups"]


def load_optimizer(opt, tensors: Mapping[str, Any], groups: list[dict[str, Any]] | None = None) -> None:
    """Restore :func:`optimizer_tensors` output; ``groups=None`` keeps the optimiser's own param groups."""
    state: dict[int, dict[str, Any]] = {}
    for name, v in tensors.items():
        if name.startswith("opt."):
            _, pid, k = name.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    if groups is None:
        groups = opt.state_dict()["param_groups"]
    opt.load_state_dict({"state": state, "param_groups": groups})


def optimizer_to(opt, device) -> None:
    """Move an optimiser's state tensors (except the step counters) to ``device``."""
    import torch

    for st in opt.state.values():
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and k != "step":
                st[k] = v.to(device)


class Checkpoint:
    """A resumable training state in one safetensors file of model kind ``kind``.

    Parameters
    ----------
    path : the checkpoint file.
    kind : model kind written into the file and required on load.
    modules : tensor prefix -> module, e.g. ``{"net": net, "ema": ema.module}``.
    optimizer : saved as ``opt.*`` tensors plus ``param_groups`` in the extras.
    generator : a ``torch.Generator`` whose state is saved as ``gen_state``.
    """

    def __init__(self, path: str | Path, kind: str, modules: Mapping[str, Any], *, optimizer=None,
                 generator=None) -> None:
        self.path = Path(path)
        self.kind = kind
        self.modules = dict(modules)
        self.optimizer = optimizer
        self.generator = generator

    def tensors(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The tensors to save and the extras that go with them (``param_groups``)."""
        tensors = {f"{prefix}.{k}": v for prefix, m in self.modules.items() for k, v in m.state_dict().items()}
        extra: dict[str, Any] = {}
        if self.optimizer is not None:
            opt_t, extra["param_groups"] = optimizer_tensors(self.optimizer)
            tensors.update(opt_t)
        if self.generator is not None:
            tensors["gen_state"] = self.generator.get_state()
        return tensors, extra

    def save(self, step: int, config: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
        """Write the state at ``step`` with the trainer's ``config`` and JSON ``extra`` (atomically)."""
        tensors, own = self.tensors()
        return save_weights(self.path, self.kind, tensors, config, {"step": int(step), **own, **(extra or {})})

    def load(self, device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
        """``(tensors, metadata)`` of the file, without restoring anything."""
        return load_weights(self.path, self.kind, device=str(device))

    def restore(self, device: str = "cpu", loaded: tuple[dict, dict] | None = None, *,
                param_groups: bool = True) -> tuple[int, dict[str, Any]]:
        """Load the file (or the already ``loaded`` one) into modules, optimiser and generator.

        ``param_groups=False`` keeps the optimiser's own settings (learning rate) and restores only its state.
        Returns the step reached and the JSON extras.
        """
        tensors, meta = loaded if loaded is not None else self.load(device)
        for prefix, m in self.modules.items():
            m.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
        extra = meta["extra"]
        if self.optimizer is not None:
            load_optimizer(self.optimizer, tensors, extra.get("param_groups") if param_groups else None)
        if self.generator is not None:
            self.generator.set_state(tensors["gen_state"].cpu())
        return int(extra["step"]), extra


class TrainingLoop:
    """The step loop shared by the trainers (see the module doc).

    Parameters
    ----------
    total : the step count to reach.
    step : steps already done (a resumed run).
    stage, message : of the :class:`Progress` events.
    dist : the distributed context (metrics are averaged over ranks, only the main rank saves).
    cancel : checked before every step; raises :class:`Cancelled`.
    max_seconds : stop between steps after this much time in :meth:`run` (0 = no limit); then
        ``stopped_by_time`` is true.
    ema : updated after every optimiser step.
    save : ``save(step)`` writes a checkpoint; called on the main rank only.
    checkpoint_every : save every this many steps (0 = only on stop, cancel and close).
    checkpoint_final : also save at the last step (a trainer that writes its weights and drops the checkpoint
        passes ``False``).
    save_on_error : also save when a step raises an ``Exception`` (not only on cancel, close, interrupt).
    check_finite : raise :class:`TrainingError` when the loss is not finite (no checkpoint then).
    items_per_step : items (crops, pairs, patches) per step, for the throughput ``rate_name``.
    report_every : yield an event every this many steps (and at the last); its ``loss`` is the mean of the
        last ``report_every`` losses.
    """

    def __init__(self, total: int, *, step: int = 0, stage: str = "train", message: str = "training",
                 dist: DistContext | None = None, cancel: CancelToken | None = None, max_seconds: float = 0.0,
                 ema: EMA | None = None, save: Callable[[int], Any] | None = None, checkpoint_every: int = 0,
                 checkpoint_final: bool = True, save_on_error: bool = False, check_finite: bool = False,
                 items_per_step: int = 1, rate_name: str = "items_per_s", report_every: int = 1) -> None:
        self.total, self.step = int(total), int(step)
        self.stage, self.message = stage, message
        self.dist = dist or DistContext()
        self.cancel, self.max_seconds = cancel, float(max_seconds)
        self.ema, self.save = ema, save
        self.checkpoint_every, self.checkpoint_final = int(checkpoint_every), checkpoint_final
        self.save_on_error, self.check_finite = save_on_error, check_finite
        self.items_per_step, self.rate_name = items_per_step, rate_name
        self.report_every = max(1, int(report_every))
        self.stopped_by_time = False

    def run(
        self,
        step_fn: Callable[[int], StepMetrics],
        after_step: Callable[[int, dict[str, float]], Mapping[str, float] | None] | None = None,
        on_time_limit: Callable[[int], Any] | None = None,
    ) -> Generator[Progress, None, int]:
        """Run the steps; a job generator that returns the step reached.

        ``step_fn(i)`` does optimiser step ``i`` (0-based) and returns its metrics (first ``loss``; floats
        or 0-d tensors of this rank). ``after_step(step, metrics)`` runs after each step with the averaged
        metrics (validation, history) and may return more metrics for the event. ``on_time_limit(step)`` runs
        when the time limit stopped the run, before its checkpoint.
        """
        stops: tuple[type[BaseException], ...] = (Cancelled, GeneratorExit, KeyboardInterrupt)
        if self.save_on_error:
            stops += (Exception,)
        try:
            yield from self._steps(step_fn, after_step)
            if self.stopped_by_time and self.step > 0:
                if on_time_limit is not None:
                    on_time_limit(self.step)
                self._save()
        except stops:
            if self.step > 0:
                self._save()
            raise
        return self.step

    def _steps(self, step_fn, after_step) -> Generator[Progress, None, None]:
        window: deque[float] = deque(maxlen=20)
        losses: deque[float] = deque(maxlen=self.report_every)
        started = self._started = time.monotonic()
        while self.step < self.total:
            if self.cancel is not None:
                self.cancel.check()
            if self._out_of_time(started):
                self.stopped_by_time = True
                return
            t0 = time.perf_counter()
            raw = step_fn(self.step)
            self.step += 1
            if self.ema is not None:
                self.ema.update(self.step)
            metrics = {k: self.dist.mean(float(v)) for k, v in raw.items()}
            loss = metrics.get("loss", 0.0)
            if self.check_finite and not math.isfinite(loss):
                raise TrainingError(f"the loss became {loss} at step {self.step}; lower the learning rate")
            window.append(time.perf_counter() - t0)
            rate = self.items_per_step * len(window) / max(sum(window), 1e-9)
            metrics[self.rate_name] = rate
            losses.append(loss)
            more = after_step(self.step, metrics) if after_step is not None else None
            if self._checkpoint_due():
                self._save()
            if self.step % self.report_every == 0 or self.step == self.total:
                yield self._event(metrics, more, losses, rate)

    def _event(self, metrics: dict[str, float], more, losses, rate: float) -> Progress:
        import numpy as np

        shown = {**metrics, "loss": float(np.mean(list(losses)))}
        shown.pop(self.rate_name)
        shown.update(more or {})
        shown[self.rate_name] = rate
        total = self.total
        if self.max_seconds:  # a time budget: the steps it will reach at the current rate
            left = max(0.0, self.max_seconds - (time.monotonic() - self._started))
            total = min(total, self.step + max(1, int(left * rate / self.items_per_step)))
        shown["eta_s"] = (total - self.step) * self.items_per_step / rate
        return Progress(self.step, total, self.message, shown, self.stage)

    def _out_of_time(self, started: float) -> bool:
        if not self.max_seconds:
            return False
        over = float(time.monotonic() - started > self.max_seconds)
        return self.dist.mean(over) > 0  # every rank stops at the same step

    def _checkpoint_due(self) -> bool:
        every = self.checkpoint_every > 0 and self.step % self.checkpoint_every == 0
        if self.checkpoint_final:
            return every or self.step == self.total
        return every and self.step < self.total

    def _save(self) -> None:
        if self.save is not None and self.dist.is_main:
            self.save(self.step)
