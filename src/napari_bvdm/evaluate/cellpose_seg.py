"""Cellpose as the evaluation's segmenter: trained from scratch on a training set, then run on the test frames.

``bvdm evaluate`` with ``"segmenter": "cellpose"`` in its ``--config`` file trains Cellpose 3's network (CPnet,
6.6 M parameters) with Cellpose's own training function (``cellpose.train.train_seg``: its flows, augmentation,
loss and learning-rate schedule) on the real, synthetic or mixed training set, and segments the test frames
with ``CellposeModel.eval``. It trains from random weights: Cellpose's pretrained models (and Cellpose 4's
SAM-based network) are downloaded from the internet on first use, which napari-bvdm never does. Cellpose is
optional (``pip install "napari-bvdm[cellpose]"``); the default segmenter is the small UNet of :mod:`.segnet`.

Seeds: ``seed`` drives the network's initialisation; Cellpose draws its augmentations from NumPy's global
generator seeded by epoch, the same for every run.
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io.video import InputError
from ..runtime.config import Config
from ..runtime.progress import Cancelled, CancelToken, Job, Progress

__all__ = ["CellposeConfig", "require_cellpose", "train_cellpose", "segment_cellpose", "cellpose_pairs"]


@dataclass
class CellposeConfig(Config):
    """Cellpose's training and segmentation settings.

    Attributes
    ----------
    epochs : training epochs (Cellpose's schedule: 10 warm-up epochs, then the rate, halved over the last ones).
    images_per_epoch : training images drawn per epoch (from all parts, real share as in a mixed set).
    batch_size : patches per step.
    patch : patch side in pixels (Cellpose's ``bsize``).
    learning_rate, weight_decay : AdamW settings (Cellpose's defaults).
    flow_threshold, cellprob_threshold : Cellpose's mask thresholds when segmenting.
    """

    epochs: int = 100
    images_per_epoch: int = 8
    batch_size: int = 8
    patch: int = 224
    learning_rate: float = 0.005
    weight_decay: float = 1e-5
    flow_threshold: float = 0.4
    cellprob_threshold: float = 0.0

    def check(self) -> None:
        self._require(self.epochs >= 1, "epochs", "must be >= 1")
        self._require(self.images_per_epoch >= 1, "images_per_epoch", "must be >= 1")
        self._require(self.batch_size >= 1, "batch_size", "must be >= 1")
        self._require(self.patch >= 32 and self.patch % 16 == 0, "patch", "must be a multiple of 16, at least 32")
        self._require(self.learning_rate > 0, "learning_rate", "must be > 0")
        self._require(self.weight_decay >= 0, "weight_decay", "must be >= 0")


def require_cellpose():
    """The ``cellpose`` module (version 3), or a clear error saying how to install it."""
    try:
        import cellpose
        from cellpose import models, train  # noqa: F401
    except ImportError:
        raise InputError("the segmenter 'cellpose' needs Cellpose 3: pip install \"napari-bvdm[cellpose]\"") from None
    version = str(getattr(cellpose, "version", "") or "")
    if version and not version.startswith("3"):
        raise InputError(f"the segmenter 'cellpose' needs Cellpose 3 (its network trains from scratch on a CPU); this "
                         f"environment has Cellpose {version}: pip install \"cellpose<4\"")
    return cellpose


def cellpose_pairs(pairs: Sequence[Any]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(images, masks)`` from evaluation pairs that are fully annotated: Cellpose's loss has no ignore mask, so
    a frame whose SEG misses cells (the pair's ``ignore`` marks them) would teach those cells as background."""
    images, masks = [], []
    for p in pairs:
        if p.ignore is not None and p.ignore.any():
            continue
        if not (p.instances > 0).any():
            continue
        images.append(np.asarray(p.image, np.float32))
        masks.append(np.asarray(p.instances, np.int32))
    return images, masks


class _Relay(logging.Handler):
    def __init__(self, events: queue.Queue) -> None:
        super().__init__(logging.INFO)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        self.events.put(("log", record.getMessage()))


def train_cellpose(parts: Sequence[tuple[list[np.ndarray], list[np.ndarray]]], config: CellposeConfig, *,
                   seed: int = 0, weights: Sequence[float] | None = None, device: str = "cpu",
                   cancel: CancelToken | None = None) -> Job[Any]:
    """Job: a ``CellposeModel`` trained from random weights on ``parts`` (each ``(images, masks)``); yields
    Progress per step.

    ``weights`` give each part's share of the drawn images (e.g. real 0.5, synthetic 0.5; default: by size).
    """
    require_cellpose()
    import torch
    from cellpose import models, train

    images = [im for imgs, _m in parts for im in imgs]
    masks = [m for _i, ms in parts for m in ms]
    if not images:
        raise InputError("no fully annotated training frame for Cellpose (its loss cannot skip unannotated cells)")
    shares = list(weights) if weights is not None else [len(p[0]) for p in parts]
    probs = np.concatenate([np.full(len(p[0]), s / max(len(p[0]), 1)) for p, s in zip(parts, shares, strict=True)])
    probs = probs / probs.sum()
    torch.manual_seed(int(seed))
    model = models.CellposeModel(gpu=str(device).startswith("cuda"), pretrained_model=False, diam_mean=30.0, nchan=2,
                                 device=torch.device(device))
    per_epoch = max(1, -(-config.images_per_epoch // config.batch_size))
    total = config.epochs * per_epoch
    events: queue.Queue = queue.Queue()
    steps = [0]
    stop = threading.Event()  # the job was cancelled or closed: the training thread stops at its next step

    def count(module: Any, _inputs: Any) -> None:
        if module.training:
            if stop.is_set() or (cancel is not None and cancel.cancelled):
                raise Cancelled()
            steps[0] += 1
            events.put(("step", steps[0]))

    hook = model.net.register_forward_pre_hook(count)
    relay = _Relay(events)
    logger = logging.getLogger("cellpose.train")
    logger.addHandler(relay)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    result: dict[str, Any] = {}

    def work(tmp: str) -> None:
        try:
            result["out"] = train.train_seg(
                model.net, train_data=images, train_labels=masks, train_probs=probs, channels=[0, 0],
                n_epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                weight_decay=config.weight_decay, nimg_per_epoch=config.images_per_epoch, bsize=config.patch,
                min_train_masks=1, save_path=tmp, model_name="bvdm-evaluate", save_every=10**9)
        except BaseException as e:  # noqa: BLE001 - handed to the job's thread
            result["error"] = e
        finally:
            events.put(("end", None))

    loss = float("nan")
    with tempfile.TemporaryDirectory(prefix="bvdm-cellpose-") as tmp:
        thread = threading.Thread(target=work, args=(tmp,), name="bvdm-cellpose-train", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = events.get()
                if kind == "end":
                    break
                if kind == "log" and "train_loss=" in str(value):
                    try:
                        loss = float(str(value).split("train_loss=")[1].split(",")[0])
                    except ValueError:
                        pass
                if kind == "step":
                    yield Progress(int(value), total, f"cellpose step {value}/{total}", {"loss": loss}, stage="train")
        finally:
            stop.set()
            thread.join()
            hook.remove()
            logger.removeHandler(relay)
            logger.setLevel(old_level)
    if "error" in result:
        raise result["error"]
    model.net.eval()
    model.diam_labels = float(model.net.diam_labels.item())
    return model


def segment_cellpose(model: Any, images: np.ndarray, config: CellposeConfig,
                     cancel: CancelToken | None = None) -> Job[np.ndarray]:
    """Job: Cellpose's masks for each frame of ``images`` (T, H, W) at the training cells' diameter."""
    out = np.zeros(images.shape, np.uint16)
    n = images.shape[0]
    for t in range(n):
        if cancel is not None:
            cancel.check()
        masks = model.eval(np.asarray(images[t], np.float32), channels=[0, 0], diameter=model.diam_labels,
                           flow_threshold=config.flow_threshold, cellprob_threshold=config.cellprob_threshold,
                           bsize=config.patch)[0]
        out[t] = np.asarray(masks, np.uint16)
        yield Progress(t + 1, n, f"segmented frame {t + 1}/{n} with Cellpose", stage="segment")
    return out
