"""Cosine noise schedule (T = 1000), forward noising, ancestral DDPM, DDIM and DPM-Solver++ steps, SDEdit.

Follows the reference (``bvdm-method.md`` sections 4-5): Nichol & Dhariwal cosine schedule with
s = 0.008, betas clipped to [1e-4, 0.9999], epsilon prediction, "fixedlarge" reverse variance (beta_t).
SDEdit starts from a (silhouette or warped) image noised to ``t_start - 1`` and denoises to 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class CosineSchedule:
    """Diffusion schedule; all arrays are float64 NumPy and float32 torch copies on demand."""

    def __init__(self, T: int = 1000, s: float = 0.008, beta_min: float = 1e-4, beta_max: float = 0.9999) -> None:
        self.T = int(T)
        steps = np.arange(self.T + 1, dtype=np.float64)
        f = np.cos(((steps / self.T) + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        betas = np.clip(1 - abar[1:] / abar[:-1], beta_min, beta_max)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(self.alphas)

    # -- helpers ---------------------------------------------------------------------------------
    def _at(self, arr: np.ndarray, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        v = torch.as_tensor(arr, dtype=torch.float32, device=like.device)[t.long().to(like.device)]
        return v.view(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`` for integer ``t`` (B,) in [0, T)."""
        ab = self._at(self.alphas_cumprod, t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        ab = self._at(self.alphas_cumprod, t, x_t)
        return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()

    def ddpm_step(self, x_t: torch.Tensor, t: int, eps: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """One ancestral step t -> t-1 with variance beta_t ("fixedlarge"); no noise at t = 0."""
        beta, alpha, ab = self.betas[t], self.alphas[t], self.alphas_cumprod[t]
        mean = (x_t - beta / math.sqrt(1 - ab) * eps) / math.sqrt(alpha)
        if t == 0 or noise is None:
            return mean
        return mean + math.sqrt(beta) * noise

    def ddim_step(self, x_t: torch.Tensor, t: int, t_prev: int, eps: torch.Tensor, eta: float = 0.0,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic (``eta = 0``) DDIM step t -> t_prev (``t_prev = -1`` means x0)."""
        ab = self.alphas_cumprod[t]
        ab_prev = self.alphas_cumprod[t_prev] if t_prev >= 0 else 1.0
        x0 = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
        sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) if t_prev >= 0 else 0.0
        dir_xt = math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
        out = math.sqrt(ab_prev) * x0 + dir_xt
        if sigma > 0 and noise is not None:
            out = out + sigma * noise
        return out


def sdedit_timesteps(t_start: int, sampler: str, steps: int | None = None) -> list[int]:
    """Timesteps visited when denoising from ``t_start - 1`` to 0.

    ``ddpm`` visits every one of them (``t_start`` network passes); ``ddim`` and ``dpm`` an evenly spaced
    subset of ``steps`` (default ``t_start``) that starts at ``t_start - 1`` and ends at 0.
    """
    if t_start < 1:
        raise ValueError(f"t_start must be >= 1, got {t_start}")
    if sampler == "ddpm":
        return list(range(t_start - 1, -1, -1))
    if sampler in ("ddim", "dpm"):
        n = max(1, min(int(steps or t_start), t_start))
        ts = np.unique(np.round(np.linspace(0, t_start - 1, n)).astype(int))[::-1]
        return [int(v) for v in ts]
    raise ValueError(f"unknown sampler {sampler!r}; use 'ddpm', 'ddim' or 'dpm'")


@torch.no_grad()
def sdedit(eps_fn: EpsFn, schedule: CosineSchedule, x_start: torch.Tensor, t_start: int, *, sampler: str = "ddpm",
           steps: int | None = None, generator: torch.Generator | None = None, eta: float = 0.0,
           callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Noise ``x_start`` to ``t_start - 1`` and denoise back to 0.

    ``eta`` is the stochasticity of ``ddim`` and ``dpm`` (0: deterministic, 1: DDPM-like variance on the
    strided steps). ``dpm`` is DPM-Solver++(2M) (Lu et al. 2022), its stochastic form for ``eta > 0``: a
    second-order multistep solver on the data prediction, as good in fewer passes as DDIM in more.
    Noise is drawn on the CPU from ``generator`` and moved to the device, so a seed gives the same
    result on every device (up to floating-point differences).
    """
    ts = sdedit_timesteps(t_start, sampler, steps)

    def randn() -> torch.Tensor:
        return torch.randn(x_start.shape, generator=generator, dtype=torch.float32).to(x_start.device)

    x = schedule.add_noise(x_start, torch.full((x_start.shape[0],), ts[0], dtype=torch.long), randn())
    if sampler == "dpm":
        return _dpm_solver(eps_fn, schedule, x, ts, eta, randn, callback)
    for i, t in enumerate(ts):
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        eps = eps_fn(x, tt).float()
        if sampler == "ddpm":
            x = schedule.ddpm_step(x, t, eps, randn() if t > 0 else None)
        else:
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            x = schedule.ddim_step(x, t, t_prev, eps, eta, randn() if eta > 0 and t_prev >= 0 else None)
        if callback is not None:
            callback(i + 1, len(ts))
    return x


def _dpm_solver(eps_fn: EpsFn, schedule: CosineSchedule, x: torch.Tensor, ts: list[int], eta: float,
                randn: Callable[[], torch.Tensor], callback: Callable[[int, int], None] | None) -> torch.Tensor:
    """DPM-Solver++(2M) from ``x`` at ``ts[0]`` down to x0, in the variance-exploding variables
    ``x / sqrt(abar)`` with ``sigma = sqrt((1 - abar) / abar)`` (log-SNR ``lambda = -log sigma``)."""
    ab = schedule.alphas_cumprod
    sigma = [math.sqrt((1 - ab[t]) / ab[t]) for t in ts]
    xv = x / math.sqrt(ab[ts[0]])
    previous, h_last = None, 0.0
    for i, t in enumerate(ts):
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x_t = xv * math.sqrt(ab[t])
        eps = eps_fn(x_t, tt).float()
        denoised = (x_t - math.sqrt(1 - ab[t]) * eps) / math.sqrt(ab[t])
        if i + 1 == len(ts):  # the last pass predicts x0
            xv = denoised
        else:
            h = math.log(sigma[i]) - math.log(sigma[i + 1])
            eta_h = eta * h
            gain = -math.expm1(-h - eta_h)
            xv = sigma[i + 1] / sigma[i] * math.exp(-eta_h) * xv + gain * denoised
            if previous is not None:  # second order: the slope of the data prediction over the last step
                xv = xv + 0.5 * gain * (h / h_last) * (denoised - previous)
            if eta > 0:
                xv = xv + randn() * sigma[i + 1] * math.sqrt(-math.expm1(-2 * eta_h))
            previous, h_last = denoised, h
        if callback is not None:
            callback(i + 1, len(ts))
    return xv
