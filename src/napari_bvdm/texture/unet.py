"""The denoiser: BVDM's reference UNet (about 0.9 M parameters), width and depth configurable.

Layout (``bvdm-method.md`` section 4): per level two 3x3 convolutions, each followed by PReLU and
InstanceNorm (the first keeps the width, the second changes it); strided 4x4 convolution down;
1x1 convolution + PixelShuffle(2) up; skips concatenated; a sinusoidal time embedding passed through a
per-block MLP (Linear-PReLU-Linear) and *added* to the block's feature map. No attention, no residual
blocks, no output activation. With ``mask_channel`` the cell mask is a second input channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..runtime.config import Config


@dataclass
class UNetConfig(Config):
    """Denoiser architecture.

    Parameters
    ----------
    width : channels of the first level (reference 16); level ``i`` has ``width * 2**i``.
    depth : number of down-samplings (reference 3: 96 -> 48 -> 24 -> 12).
    t_channels : size of the sinusoidal time embedding (reference 128).
    mask_channel : feed the cell mask as a second input channel (mask-conditioned variant; the default: it keeps
        dim cells' outlines under SDEdit noise and lets the model work in absolute units, docs/texture.md).
    """

    width: int = 16
    depth: int = 3
    t_channels: int = 128
    mask_channel: bool = True

    def check(self) -> None:
        self._require(1 <= self.width <= 256, "width", "must be in 1..256")
        self._require(1 <= self.depth <= 6, "depth", "must be in 1..6")
        self._require(self.t_channels >= 8 and self.t_channels % 2 == 0, "t_channels", "must be even and >= 8")

    @property
    def in_channels(self) -> int:
        return 2 if self.mask_channel else 1

    @property
    def multiple(self) -> int:
        """Crop sizes must be divisible by this."""
        return 2**self.depth


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps ``t`` (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class Block(nn.Module):
    """Two 3x3 conv + PReLU + InstanceNorm; time embedding added after the first."""

    def __init__(self, c_in: int, c_out: int, t_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_in, 3, padding=1)
        self.act1 = nn.PReLU(c_in)
        self.norm1 = nn.InstanceNorm2d(c_in, affine=True)
        self.conv2 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.act2 = nn.PReLU(c_out)
        self.norm2 = nn.InstanceNorm2d(c_out, affine=True)
        self.t_mlp = nn.Sequential(nn.Linear(t_channels, t_channels), nn.PReLU(), nn.Linear(t_channels, c_in))

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.norm1(self.act1(self.conv1(x)))
        h = h + self.t_mlp(temb)[:, :, None, None]
        return self.norm2(self.act2(self.conv2(h)))


class UNet(nn.Module):
    """Epsilon-predicting UNet. ``forward(x (B,C,H,W), t (B,)) -> (B,1,H,W)``."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or UNetConfig()
        w = [cfg.width * 2**i for i in range(cfg.depth + 1)]
        self.stem = nn.Conv2d(cfg.in_channels, w[0], 3, padding=1)
        self.enc = nn.ModuleList([Block(w[i], w[i], cfg.t_channels) for i in range(cfg.depth)])
        self.down = nn.ModuleList([nn.Conv2d(w[i], w[i + 1], 4, stride=2, padding=1) for i in range(cfg.depth)])
        self.mid = Block(w[-1], w[-1], cfg.t_channels)
        self.up = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(w[i + 1], 4 * w[i], 1), nn.PixelShuffle(2)) for i in range(cfg.depth)]
        )
        self.dec = nn.ModuleList([Block(2 * w[i], w[i], cfg.t_channels) for i in range(cfg.depth)])
        self.head = nn.Conv2d(w[0], 1, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        m = self.config.multiple
        if x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(f"crop size {tuple(x.shape[-2:])} must be divisible by {m} for depth {self.config.depth}")
        temb = timestep_embedding(t, self.config.t_channels)
        h = self.stem(x)
        skips = []
        for blk, down in zip(self.enc, self.down, strict=True):
            h = blk(h, temb)
            skips.append(h)
            h = down(h)
        h = self.mid(h, temb)
        for i in reversed(range(self.config.depth)):
            h = self.up[i](h)
            h = self.dec[i](torch.cat([h, skips[i]], dim=1), temb)
        return self.head(h)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def forward_flops(config: UNetConfig, size: int) -> float:
    """Multiply-adds x 2 of one forward pass on a ``size`` x ``size`` crop (convolutions only)."""
    net = UNet(config)
    total = 0.0
    hooks = []

    def hook(mod, inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        total += 2.0 * k * out.numel() / out.shape[0] * 1.0

    for mod in net.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        net(torch.zeros(1, config.in_channels, size, size), torch.zeros(1, dtype=torch.long))
    for h in hooks:
        h.remove()
    return total
