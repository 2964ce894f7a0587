"""TextureModel: denoiser + schedule + normalisation + config, saved as safe weights.

The weights file (``runtime.weights``, kind ``"texture-ddpm"``) holds the EMA weights, the
:class:`TextureModelConfig`, the :class:`Normalisation` and a model version; loading a file of another kind
or version raises :class:`~napari_bvdm.runtime.weights.WeightsError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..runtime.config import Config
from ..runtime.weights import WeightsError, load_weights, read_metadata, save_weights
from .normalisation import Normalisation
from .profile import RimProfile
from .schedule import CosineSchedule
from .unet import UNet, UNetConfig

KIND = "texture-ddpm"
MODEL_VERSION = 1
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "defaults" / "texture.safetensors"


@dataclass
class TextureModelConfig(Config):
    """What defines a texture model (saved with its weights).

    Parameters
    ----------
    unet : denoiser architecture.
    crop_size : side of the square crops it was trained on (reference 96).
    T : diffusion steps (reference 1000, cosine schedule).
    cell_level : None (reference) trains on crops in normalised units. A number scales every training crop
        so its mean inside the mask equals ``cell_level``; painters then start from a silhouette at this
        level and rescale to the requested brightness afterwards. This makes the SDEdit strength the same
        for dim and bright cells (in absolute units a dim cell's silhouette drowns in the Tf0 noise).
    """

    unet: UNetConfig = field(default_factory=UNetConfig)
    crop_size: int = 96
    T: int = 1000
    cell_level: float | None = None

    def check(self) -> None:
        self._require(self.crop_size >= 8 and self.crop_size % self.unet.multiple == 0, "crop_size",
                      f"must be >= 8 and divisible by {self.unet.multiple} (2**depth)")
        self._require(10 <= self.T <= 10000, "T", "must be in 10..10000")
        self._require(self.cell_level is None or 0 < self.cell_level <= 10, "cell_level", "must be None or in (0, 10]")


class TextureModel:
    """A trained (or fresh) texture model.

    Attributes
    ----------
    config, normalisation, net (the EMA/inference network), schedule, info (training metadata),
    profile (the training cells' :class:`~napari_bvdm.texture.profile.RimProfile`, measured when the model
    was trained; None for older files: painters then start from a flat silhouette).
    """

    def __init__(self, config: TextureModelConfig, normalisation: Normalisation, net: UNet | None = None,
                 info: dict[str, Any] | None = None, profile: RimProfile | None = None) -> None:
        self.config = config
        self.profile = profile
        self.normalisation = normalisation
        self.net = net if net is not None else UNet(config.unet)
        self.net.eval()
        self.schedule = CosineSchedule(config.T)
        self.info = dict(info or {})

    @property
    def crop_size(self) -> int:
        return self.config.crop_size

    @property
    def mask_conditioned(self) -> bool:
        return self.config.unet.mask_channel

    def to(self, device: Any) -> TextureModel:
        self.net.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def save(self, path: str | Path) -> Path:
        """Write a ``.safetensors`` file (atomic)."""
        extra = {"model_version": MODEL_VERSION, "normalisation": self.normalisation.to_dict(), "info": self.info}
        if self.profile is not None:
            extra["profile"] = self.profile.to_dict()
        return save_weights(path, KIND, self.net.state_dict(), self.config.to_dict(), extra=extra)

    @classmethod
    def load(cls, path: str | Path, device: Any = "cpu") -> TextureModel:
        """Read a file written by :meth:`save`.

        Raises
        ------
        WeightsError
            Another kind of model, another format or model version, or tensors that do not fit the config.
        """
        tensors, meta = load_weights(path, KIND, device="cpu")
        extra = meta["extra"]
        ver = int(extra.get("model_version", -1))
        if ver != MODEL_VERSION:
            raise WeightsError(f"{path} is texture model version {ver}; this napari-bvdm reads version "
                               f"{MODEL_VERSION}: retrain it with `bvdm train-texture`")
        config = TextureModelConfig.from_dict(meta["config"])
        norm = Normalisation.from_dict(extra["normalisation"])
        profile = None
        if extra.get("profile") is not None:
            try:
                profile = RimProfile.from_dict(extra["profile"])
            except (ValueError, TypeError) as e:
                raise WeightsError(f"{path}: the stored rim profile is not valid ({e})") from None
        net = UNet(config.unet)
        try:
            net.load_state_dict(tensors)
        except RuntimeError as e:
            raise WeightsError(f"{path}: weights do not match the stored config ({e})") from None
        return cls(config, norm, net, extra.get("info"), profile).to(device)

    @classmethod
    def default(cls, device: Any = "cpu") -> TextureModel:
        """The bundled default model (trained on Fluo-N2DH-GOWT1/01, see docs/texture.md)."""
        if not DEFAULT_WEIGHTS.is_file():
            raise WeightsError(f"bundled default texture weights are missing ({DEFAULT_WEIGHTS}); reinstall "
                               "napari-bvdm or train one with `bvdm train-texture`")
        return cls.load(DEFAULT_WEIGHTS, device)

    @staticmethod
    def describe(path: str | Path) -> dict[str, Any]:
        """Metadata of a weights file without loading it."""
        return read_metadata(path)
