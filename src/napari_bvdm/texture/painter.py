"""Painters: turn cell masks (+ brightness) into textures, per ``docs/dev/contracts.md``.

- :class:`DiffusionPainter` - SDEdit with the trained DDPM: a silhouette at the cell's brightness, shaded
  with the real cells' rim profile when the model carries one (or the warped previous texture), is noised to
  ``steps - 1`` and denoised with ancestral DDPM (every step, the reference) or DDIM (a subset of steps);
  batched over cells; deterministic for a seed.
- :class:`ClassicalPainter` - no learning: silhouette at the cell's brightness (optionally shaded with the
  rim profile), smooth multiplicative texture and fine noise with amplitudes measured on real crops, blurred
  edge. Instant preview and baseline.

Both return float32 textures in normalised units whose mean inside each mask equals the requested
brightness, with the 2-px contour replaced by a Gaussian-blurred copy (reference post-processing) and
zero beyond ``margin`` px outside the mask (the scene adds background and noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from scipy import ndimage as ndi

from ..io.video import InputError
from ..runtime.config import Config
from .crops import CellCrops
from .model import TextureModel
from .normalisation import Normalisation
from .profile import RimProfile
from .schedule import sdedit


class Painter(Protocol):
    crop_size: int
    normalisation: Normalisation

    def paint(self, masks: np.ndarray, brightness: np.ndarray, *, init: np.ndarray | None = None,
              steps: int | None = None, generator: Any = None) -> np.ndarray: ...


def as_torch_generator(generator: Any) -> torch.Generator:
    """A CPU ``torch.Generator`` from None (random), an int seed, a NumPy or a torch generator."""
    if isinstance(generator, torch.Generator):
        return generator
    g = torch.Generator()
    if generator is None:
        g.seed()
    elif isinstance(generator, np.random.Generator):
        g.manual_seed(int(generator.integers(0, 2**63 - 1)))
    else:
        g.manual_seed(int(generator))
    return g


def _as_numpy_rng(generator: Any) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, torch.Generator):
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return np.random.default_rng(generator)


def _check_inputs(masks: np.ndarray, brightness: np.ndarray, init: np.ndarray | None) -> tuple[np.ndarray, ...]:
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise InputError(f"masks must be (B, h, w), got shape {masks.shape}")
    masks = masks > 0
    b = np.broadcast_to(np.asarray(brightness, np.float32).reshape(-1), (masks.shape[0],)).copy() \
        if np.size(brightness) in (1, masks.shape[0]) else None
    if b is None:
        raise InputError(f"brightness has {np.size(brightness)} values for {masks.shape[0]} masks")
    if not np.isfinite(b).all():
        raise InputError("brightness holds NaN or infinite values")
    if init is not None:
        init = np.asarray(init, np.float32)
        if init.ndim == 2:
            init = init[None]
        if init.shape != masks.shape:
            raise InputError(f"init shape {init.shape} differs from masks shape {masks.shape}")
        if not np.isfinite(init).all():
            raise InputError("init texture holds NaN or infinite values")
    return masks, b, init


def finish(tex: np.ndarray, masks: np.ndarray, brightness: np.ndarray, *, edge_sigma: float = 1.0,
           margin: int = 2, match_brightness: bool = True) -> np.ndarray:
    """Shared post-processing: brightness match, blurred 2-px contour, zero far outside the mask."""
    out = np.empty_like(tex, dtype=np.float32)
    st = ndi.generate_binary_structure(2, 1)
    for i in range(tex.shape[0]):
        m = masks[i]
        x = tex[i].astype(np.float32)
        if match_brightness and m.any():
            mean = float(x[m].mean())
            if abs(mean) > 1e-6:
                x = x * (brightness[i] / mean)
        near = ndi.binary_dilation(m, st, iterations=margin) if margin > 0 else m
        x = np.where(near, x, 0.0)
        if edge_sigma > 0:
            band = ndi.binary_dilation(m, st) & ~ndi.binary_erosion(m, st)
            x = np.where(band, ndi.gaussian_filter(x, edge_sigma), x)
        out[i] = x
    return out


@dataclass
class DiffusionPainterConfig(Config):
    """Sampling settings of :class:`DiffusionPainter`.

    Parameters
    ----------
    sampler : "ddpm" (ancestral, every timestep: the reference), "ddim" (a subset of steps) or "dpm"
        (DPM-Solver++(2M) on the same subset: second order, fewer passes for the same result).
    ddim_steps : DDIM or DPM network passes for a Tf0-strength start (a refresh uses proportionally fewer,
        >= 1).
    ddim_eta : stochasticity of DDIM and DPM (0 deterministic; 1 adds DDPM-like noise on the strided steps).
    tf0, tf_non0 : SDEdit strengths for a track's first frame and for later-frame refreshes (200, 10).
    refresh_passes : with DDIM or DPM, at most this many network passes for a refresh (a start from a warped
        texture; otherwise ``ceil(ddim_steps * strength / tf0)``); 8 measured as good as 25 for a
        strength-100 refresh (docs/synthesis.md). None = no limit.
    silhouette : grey of the silhouette (model units); None uses each cell's brightness, or the model's
        ``cell_level`` when it was trained on per-cell scaled crops.
    rim_profile : hold the painted cells to the real cells' mean intensity profile across the rim (the
        painter's ``profile``, else the model's, measured on its training crops; :mod:`~napari_bvdm.texture.profile`):
        the silhouette is shaded with it instead of a flat grey, and each batch's output (first paints and
        refreshes) gets one gain per depth that brings its mean profile to it. Models saved before the profile
        existed have none and paint as before.
    edge_sigma : blur of the 2-px contour (reference 1).
    batch_size : cells per network batch.
    precision : "fp32" or "bf16" (autocast; bf16 is faster on CPUs with AVX512_BF16 and on GPUs).
    device : "auto", "cpu", "cuda", ... (None keeps the model's device).
    """

    sampler: str = "ddpm"
    ddim_steps: int = 50
    ddim_eta: float = 0.0
    tf0: int = 200
    tf_non0: int = 10
    refresh_passes: int | None = 8
    silhouette: float | None = None
    rim_profile: bool = True
    edge_sigma: float = 1.0
    batch_size: int = 64
    precision: str = "fp32"
    device: str | None = None

    def check(self) -> None:
        self._require(self.sampler in ("ddpm", "ddim", "dpm"), "sampler", "must be 'ddpm', 'ddim' or 'dpm'")
        self._require(self.ddim_steps >= 1, "ddim_steps", "must be >= 1")
        self._require(0 <= self.ddim_eta <= 1, "ddim_eta", "must be in [0, 1]")
        self._require(1 <= self.tf0 <= 1000, "tf0", "must be in 1..1000")
        self._require(1 <= self.tf_non0 <= 1000, "tf_non0", "must be in 1..1000")
        self._require(self.refresh_passes is None or self.refresh_passes >= 1, "refresh_passes", "must be >= 1")
        self._require(self.batch_size >= 1, "batch_size", "must be >= 1")
        self._require(self.precision in ("fp32", "bf16"), "precision", "must be fp32 or bf16")
        self._require(self.edge_sigma >= 0, "edge_sigma", "must be >= 0")


class DiffusionPainter:
    """SDEdit painter with a :class:`TextureModel` (see module doc)."""

    @property
    def camera_noise_share(self) -> float:
        """Share of the scene's fitted camera-noise variance the synthesis adds on top of this painter's
        textures, which carry grain of their own: DDIM's smoother cells get half, DPM-Solver++'s none (their
        fine grain and contrast then match real GOWT1 cells: docs/synthesis.md)."""
        return 0.0 if self.config.sampler == "dpm" else 0.5

    def __init__(self, model: TextureModel, sampler: str = "ddpm", config: DiffusionPainterConfig | None = None,
                 profile: RimProfile | None = None, **overrides: Any) -> None:
        cfg = config or DiffusionPainterConfig()
        self.config = cfg.replace(sampler=sampler, **overrides)
        self.model = model
        self._profile = profile
        if self.config.device is not None:
            from ..runtime.device import resolve_device

            model.to(resolve_device(self.config.device))
        self.passes = 0  # network evaluations per cell, summed over calls (for speed reports)
        self.pass_pixels = 0  # the same, weighted by each crop's padded pixel count

    @property
    def crop_size(self) -> int:
        return self.model.crop_size

    @property
    def profile(self) -> RimProfile | None:
        """The rim profile that shades the silhouette and that painted batches are matched to (None: flat)."""
        if not self.config.rim_profile:
            return None
        return self._profile if self._profile is not None else self.model.profile

    @property
    def normalisation(self) -> Normalisation:
        return self.model.normalisation

    def n_steps(self, t_start: int, refresh: bool = False) -> int:
        """Network passes per cell for a start at ``t_start`` (``refresh``: from a warped texture)."""
        if self.config.sampler == "ddpm":
            return t_start
        n = max(1, min(t_start, math.ceil(self.config.ddim_steps * t_start / self.config.tf0)))
        if refresh and self.config.refresh_passes is not None:
            n = min(n, self.config.refresh_passes)
        return n

    def paint(self, masks: np.ndarray, brightness: np.ndarray, *, init: np.ndarray | None = None,
              steps: int | None = None, generator: Any = None) -> np.ndarray:
        """Paint ``masks`` (B, h, w); see :class:`Painter`. ``steps`` is the SDEdit strength
        (default Tf0 without ``init``, Tf_non0 with it)."""
        masks, b, init = _check_inputs(masks, brightness, init)
        cfg = self.config
        t_start = int(steps or (cfg.tf0 if init is None else cfg.tf_non0))
        t_start = min(t_start, self.model.config.T)
        gen = as_torch_generator(generator)
        B, h, w = masks.shape
        mult = self.model.config.unet.multiple
        ph, pw = (-h) % mult, (-w) % mult
        if init is None:
            level = self.model.config.cell_level
            grey = np.float32(cfg.silhouette) if cfg.silhouette is not None else \
                b[:, None, None] if level is None else np.float32(level)
            start = np.where(masks, grey, 0.0).astype(np.float32)
            if self.profile is not None:
                start *= self.profile.shade(masks)
        else:
            start = np.where(masks, init, 0.0).astype(np.float32)
            if self.model.config.cell_level is not None:  # into the model's per-cell units
                start *= self.model.config.cell_level / np.maximum(b, 1e-3)[:, None, None]
        device = self.model.device
        net = self.model.net.eval()
        out = np.empty((B, h, w), np.float32)
        n_eval = self.n_steps(t_start, refresh=init is not None)
        for s in range(0, B, cfg.batch_size):
            x0 = torch.from_numpy(np.pad(start[s:s + cfg.batch_size], ((0, 0), (0, ph), (0, pw))))[:, None]
            mk = torch.from_numpy(np.pad(masks[s:s + cfg.batch_size], ((0, 0), (0, ph), (0, pw)))
                                  .astype(np.float32))[:, None].to(device)
            x0 = x0.to(device)

            def eps_fn(x: torch.Tensor, t: torch.Tensor, mk: torch.Tensor = mk) -> torch.Tensor:
                inp = torch.cat([x, mk], 1) if self.model.mask_conditioned else x
                if cfg.precision == "bf16":
                    with torch.autocast(device.type, dtype=torch.bfloat16):
                        return net(inp, t).float()
                return net(inp, t)

            x = sdedit(eps_fn, self.model.schedule, x0, t_start, sampler=cfg.sampler, steps=n_eval, generator=gen,
                       eta=cfg.ddim_eta)
            out[s:s + cfg.batch_size] = x[:, 0, :h, :w].float().cpu().numpy()
        self.passes += n_eval * B
        self.pass_pixels += n_eval * B * (h + ph) * (w + pw)
        profile = self.profile
        if profile is not None:  # refreshes too: warping and re-noising drift back to the model's own rim
            out = profile.match(out, masks)
        return finish(out, masks, b, edge_sigma=cfg.edge_sigma)


@dataclass
class ClassicalStats(Config):
    """Texture statistics of real cells, relative to each cell's brightness.

    Parameters
    ----------
    low_sigma : length scale (px) of the smooth intensity variation inside nuclei.
    low_rel_std : its standard deviation relative to the cell's mean.
    high_rel_std : standard deviation of the fine residual relative to the cell's mean.
    edge_sigma : blur of the contour.
    """

    low_sigma: float = 3.0
    low_rel_std: float = 0.15
    high_rel_std: float = 0.08
    edge_sigma: float = 1.0

    @classmethod
    def fit(cls, crops: CellCrops, low_sigma: float = 3.0, erode: int = 3) -> ClassicalStats:
        """Measure the statistics on real crops (inside each mask eroded by ``erode`` px)."""
        lows, highs = [], []
        st = ndi.generate_binary_structure(2, 1)
        for img, m, br in zip(crops.images, crops.masks, crops.brightness, strict=True):
            inner = ndi.binary_erosion(m, st, iterations=erode)
            if inner.sum() < 20 or br <= 0:
                continue
            mf = m.astype(np.float32)
            low = ndi.gaussian_filter(img * mf, low_sigma) / np.maximum(ndi.gaussian_filter(mf, low_sigma), 1e-6)
            lows.append(float(low[inner].std() / br))
            highs.append(float((img - low)[inner].std() / br))
        if not lows:
            raise InputError("no cell large enough to measure texture statistics")
        return cls(low_sigma=low_sigma, low_rel_std=float(np.median(lows)), high_rel_std=float(np.median(highs)))


class ClassicalPainter:
    """Model-free painter: silhouette x (1 + smooth field) + fine noise, blurred edge (see module doc)."""

    def __init__(self, stats: ClassicalStats | None = None, normalisation: Normalisation | None = None,
                 crop_size: int = 96, profile: RimProfile | None = None) -> None:
        self.stats = stats or ClassicalStats()
        self.normalisation = normalisation or Normalisation(0.0, 1.0, "float32")
        self.crop_size = crop_size
        self.profile = profile

    @classmethod
    def from_crops(cls, crops: CellCrops, profile: RimProfile | None = None) -> ClassicalPainter:
        """Statistics measured on real crops; ``profile`` (e.g. ``RimProfile.from_crops(crops)``) shades the
        silhouette."""
        return cls(ClassicalStats.fit(crops), crops.normalisation, crops.crop_size, profile)

    def paint(self, masks: np.ndarray, brightness: np.ndarray, *, init: np.ndarray | None = None,
              steps: int | None = None, generator: Any = None) -> np.ndarray:
        """Paint ``masks``; with ``init`` the previous texture is kept and lightly re-noised."""
        masks, b, init = _check_inputs(masks, brightness, init)
        rng = _as_numpy_rng(generator)
        s = self.stats
        B = masks.shape[0]
        field = ndi.gaussian_filter(rng.standard_normal(masks.shape).astype(np.float32), (0, s.low_sigma,
                                                                                           s.low_sigma))
        sd = field.reshape(B, -1).std(1)[:, None, None] + 1e-6
        field = field / sd * s.low_rel_std
        fine = rng.standard_normal(masks.shape).astype(np.float32) * s.high_rel_std
        if init is None:
            tex = b[:, None, None] * (1.0 + field + fine)
            if self.profile is not None:
                tex *= self.profile.shade(masks)
        else:
            # refresh: keep the warped texture, add a little fine noise (strength ~ steps / 1000)
            k = min(1.0, (steps or 10) / 100.0)
            tex = init + k * fine * b[:, None, None]
        tex = np.where(masks, tex, 0.0).astype(np.float32)
        return finish(tex, masks, b, edge_sigma=s.edge_sigma)
