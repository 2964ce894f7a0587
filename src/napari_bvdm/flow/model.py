""":class:`FlowModel`: a trained :class:`~napari_bvdm.flow.net.FlowNet` with its config, saved as safetensors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.config import Config
from ..runtime.weights import WeightsError, load_weights, save_weights

__all__ = ["FlowConfig", "FlowModel", "KIND"]

KIND = "flow"
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "defaults" / "flow.safetensors"


@dataclasses.dataclass
class FlowConfig(Config):
    """Architecture of the flow network (VoxelMorph MNIST-tutorial sizes by default)."""

    encoder: tuple[int, ...] = (16, 32, 32, 32)
    decoder: tuple[int, ...] = (32, 32, 32, 32, 32, 16, 16)
    crop_size: int = 96

    def check(self) -> None:
        self._require(len(self.encoder) >= 1 and all(c > 0 for c in self.encoder), "encoder",
                      "needs at least one positive width")
        self._require(len(self.decoder) >= len(self.encoder) and all(c > 0 for c in self.decoder), "decoder",
                      "needs at least as many positive widths as the encoder")
        m = 2 ** len(self.encoder)
        self._require(self.crop_size >= m and self.crop_size % m == 0, "crop_size",
                      f"must be a positive multiple of {m} (2 ** number of encoder levels)")


class FlowModel:
    """Flow network + config + provenance (``extra``: data source, median cell area, validation Dice).

    Use :meth:`predict` for numpy masks; :attr:`net` is the ``torch.nn.Module``.
    """

    def __init__(self, config: FlowConfig | None = None, net=None, extra: dict[str, Any] | None = None,
                 device: str | Any = "cpu") -> None:
        import torch

        from .net import FlowNet

        self.config = config or FlowConfig()
        self.net = net or FlowNet(self.config.encoder, self.config.decoder)
        self.device = torch.device(device) if not isinstance(device, torch.device) else device
        self.net.to(self.device).eval()
        self.extra = dict(extra or {})

    @property
    def multiple(self) -> int:
        return 2 ** len(self.config.encoder)

    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.net.parameters()))

    # --- inference ---------------------------------------------------------------------------
    def predict_torch(self, prev, cur):
        """Displacement for torch masks ``(B, 1, h, w)`` float on the model device (pads to the multiple)."""
        import torch
        import torch.nn.functional as F

        h, w = prev.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            prev = F.pad(prev, (0, pw, 0, ph))
            cur = F.pad(cur, (0, pw, 0, ph))
        with torch.no_grad():
            flow = self.net(prev, cur)
        return flow[..., :h, :w]

    def predict(self, prev_masks: np.ndarray, cur_masks: np.ndarray) -> np.ndarray:
        """Displacement ``(B, 2, h, w)`` float32 (pixels, dy/dx) from previous to current binary masks.

        ``prev_masks`` and ``cur_masks`` are ``(B, h, w)`` (any dtype; > 0 is foreground). Apply it with
        :func:`napari_bvdm.flow.net.warp` (``warped(x) = prev(x + u(x))``).
        """
        import torch

        prev = np.asarray(prev_masks)
        cur = np.asarray(cur_masks)
        if prev.shape != cur.shape or prev.ndim != 3:
            raise ValueError(f"expected two (B, h, w) mask stacks of one shape, got {prev.shape} and {cur.shape}")
        p = torch.from_numpy((prev > 0).astype(np.float32))[:, None].to(self.device)
        c = torch.from_numpy((cur > 0).astype(np.float32))[:, None].to(self.device)
        return self.predict_torch(p, c).cpu().numpy()

    # --- files -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        return save_weights(path, KIND, self.net.state_dict(), self.config.to_dict(), self.extra)

    @classmethod
    def load(cls, path: str | Path, device: str | Any = "cpu") -> FlowModel:
        """Load a ``flow`` weights file (raises :class:`~napari_bvdm.runtime.weights.WeightsError`)."""
        tensors, meta = load_weights(path, KIND, device="cpu")
        config = FlowConfig.from_dict(meta["config"])
        model = cls(config, extra=meta["extra"], device="cpu")
        try:
            model.net.load_state_dict(tensors)
        except RuntimeError as e:
            raise WeightsError(f"{path}: weights do not match the stored config ({e})") from None
        model.net.to(model.device)
        if str(device) != "cpu":
            import torch

            model.device = torch.device(device)
            model.net.to(model.device)
        model.path = Path(path)
        return model

    @classmethod
    def default(cls, device: str | Any = "cpu") -> FlowModel:
        """The bundled default flow model (trained on Fluo-N2DH-GOWT1/01, see docs/training.md)."""
        if not DEFAULT_WEIGHTS.is_file():
            raise WeightsError(f"the bundled flow weights are missing ({DEFAULT_WEIGHTS}); reinstall napari-bvdm "
                               "or train a flow model")
        return cls.load(DEFAULT_WEIGHTS, device)
