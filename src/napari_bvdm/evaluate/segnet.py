"""A compact UNet for nucleus/cell instance segmentation: 3 classes, then watershed.

The network predicts, per pixel, background / cell interior / cell boundary (softmax). Instances
are the connected interior regions (seeds) grown by watershed over the foreground (interior +
boundary). The same architecture and budget are used for every training set of the evaluation, so
differences in the scores come from the training data only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime.config import Config

__all__ = [
    "SegNetConfig",
    "build_segnet",
    "normalise_image",
    "make_targets",
    "predict_probs",
    "instances_from_probs",
    "segment_frames",
    "save_segnet",
    "load_segnet",
    "WEIGHTS_KIND",
]

WEIGHTS_KIND = "evaluate-segnet"


@dataclass
class SegNetConfig(Config):
    """Architecture and post-processing of the segmentation network.

    Attributes
    ----------
    base_channels : channels of the first level (doubled per level).
    depth : number of 2x down-samplings.
    min_seed_px : interior components smaller than this are not seeds.
    min_size_px : instances smaller than this are removed.
    p_low, p_high : percentiles for per-image intensity normalisation.
    """

    base_channels: int = 16
    depth: int = 3
    min_seed_px: int = 6
    min_size_px: int = 20
    p_low: float = 1.0
    p_high: float = 99.8

    def check(self) -> None:
        self._require(1 <= self.base_channels <= 256, "base_channels", "must be in 1..256")
        self._require(1 <= self.depth <= 6, "depth", "must be in 1..6")
        self._require(self.min_seed_px >= 1, "min_seed_px", "must be >= 1")
        self._require(self.min_size_px >= 1, "min_size_px", "must be >= 1")
        self._require(0 <= self.p_low < self.p_high <= 100, "p_low", "need 0 <= p_low < p_high <= 100")


def build_segnet(config: SegNetConfig):
    """A UNet (conv-BN-ReLU x2 per level, max-pool down, bilinear up) with 1 input, 3 output channels."""
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class UNet(nn.Module):
        def __init__(self, c: int, depth: int) -> None:
            super().__init__()
            chans = [c * 2**i for i in range(depth + 1)]
            self.down = nn.ModuleList([block(1, chans[0])] + [block(chans[i], chans[i + 1]) for i in range(depth)])
            self.up = nn.ModuleList([block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(depth))])
            self.head = nn.Conv2d(chans[0], 3, 1)
            self.depth = depth

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for i, blk in enumerate(self.down):
                if i:
                    x = nn.functional.max_pool2d(x, 2)
                x = blk(x)
                skips.append(x)
            skips.pop()
            for blk in self.up:
                s = skips.pop()
                x = nn.functional.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
                x = blk(torch.cat([x, s], dim=1))
            return self.head(x)

    return UNet(config.base_channels, config.depth)


def normalise_image(image: np.ndarray, p_low: float = 1.0, p_high: float = 99.8) -> np.ndarray:
    """Per-image percentile normalisation to about [0, 1] (float32), robust to the camera's range."""
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, [p_low, p_high])
    return ((image - lo) / max(float(hi - lo), 1e-6)).astype(np.float32)


def make_targets(instances: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    """Classes 0 background, 1 interior, 2 boundary (inner boundary of each instance), -1 ignored; int64."""
    from skimage.segmentation import find_boundaries

    instances = np.asarray(instances)
    target = (instances > 0).astype(np.int64)
    target[find_boundaries(instances, mode="inner") & (instances > 0)] = 2
    if ignore is not None:
        target[np.asarray(ignore, bool)] = -1
    return target


def predict_probs(model, image: np.ndarray, config: SegNetConfig, device="cpu") -> np.ndarray:
    """Softmax probabilities (3, H, W) for one raw image (normalised here; padded to the UNet grid)."""
    import torch

    x = normalise_image(image, config.p_low, config.p_high)
    h, w = x.shape
    m = 2**config.depth
    ph, pw = (-h) % m, (-w) % m
    x = np.pad(x, ((0, ph), (0, pw)), mode="reflect" if min(h, w) > max(ph, pw) else "edge")
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x)[None, None].to(device))
        probs = torch.softmax(logits, dim=1)[0, :, :h, :w]
    return probs.cpu().numpy()


def instances_from_probs(probs: np.ndarray, config: SegNetConfig) -> np.ndarray:
    """Watershed instances (uint16, labels 1..n) from ``(3, H, W)`` class probabilities."""
    from scipy import ndimage as ndi
    from skimage.segmentation import relabel_sequential, watershed

    from ..runtime.compat import remove_small_objects

    interior = probs[1]
    fg = (probs[1] + probs[2]) > 0.5
    seeds, _ = ndi.label((interior > 0.5) & fg)
    if seeds.max():
        seeds = remove_small_objects(seeds, config.min_seed_px)
    labels = watershed(-interior, markers=seeds, mask=fg)
    # foreground blobs without a seed become their own instances
    rest, n_rest = ndi.label(fg & (labels == 0))
    if n_rest:
        labels = np.where(rest > 0, rest + labels.max(), labels)
    if labels.max():
        labels = remove_small_objects(labels, config.min_size_px)
    labels, _, _ = relabel_sequential(labels)
    if labels.max() > 65535:
        raise ValueError("more than 65535 instances in one frame")
    return labels.astype(np.uint16)


def segment_frames(model, images: np.ndarray, config: SegNetConfig, device="cpu", cancel=None):
    """Job: segment each frame of ``images`` (T, H, W); yields Progress, returns (T, H, W) uint16."""
    from ..runtime.progress import Progress

    out = np.zeros(images.shape, np.uint16)
    n = images.shape[0]
    for t in range(n):
        if cancel is not None:
            cancel.check()
        out[t] = instances_from_probs(predict_probs(model, images[t], config, device), config)
        yield Progress(t + 1, n, f"segmented frame {t + 1}/{n}", stage="segment")
    return out


def save_segnet(path: str | Path, model, config: SegNetConfig, extra: dict | None = None) -> Path:
    """Save weights (safetensors, kind ``evaluate-segnet``) with the config inside."""
    from ..runtime.weights import save_weights

    return save_weights(path, WEIGHTS_KIND, model.state_dict(), config.to_dict(), extra)


def load_segnet(path: str | Path, device="cpu"):
    """Load ``(model, config, extra)`` saved by :func:`save_segnet`."""
    from ..runtime.weights import load_weights

    tensors, meta = load_weights(path, WEIGHTS_KIND, device=str(device))
    config = SegNetConfig.from_dict(meta["config"])
    model = build_segnet(config).to(device)
    model.load_state_dict(tensors)
    model.eval()
    return model, config, meta["extra"]
