"""VoxelMorph-style 2D registration UNet (own small implementation) and ``grid_sample`` warping.

The network takes the previous (moving) and current (fixed) binary mask crop of one cell, stacked as
two channels, and returns a dense displacement field ``u`` of shape ``(B, 2, h, w)`` in pixels,
``(dy, dx)`` order, defined on the *current* grid: ``warped(x) = moving(x + u(x))`` (the CVPR-2018
non-diffeomorphic VoxelMorph, ``int_steps=0``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FlowNet", "warp", "compose", "identity_grid"]


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.2))


class FlowNet(nn.Module):
    """VoxelMorph UNet: strided-conv encoder, nearest-upsampling decoder with skips, 2-channel head.

    Parameters
    ----------
    encoder : channel widths of the encoder levels (each halves the resolution).
    decoder : widths of the decoder convs; the first ``len(encoder)`` follow upsamplings, the rest
        run at full resolution (VoxelMorph's "extra" convs).

    The input size must be divisible by ``2 ** len(encoder)`` (crops are multiples of 16).
    """

    def __init__(
        self,
        encoder: Sequence[int] = (16, 32, 32, 32),
        decoder: Sequence[int] = (32, 32, 32, 32, 32, 16, 16),
    ) -> None:
        super().__init__()
        self.encoder_widths = tuple(int(c) for c in encoder)
        self.decoder_widths = tuple(int(c) for c in decoder)
        if len(self.decoder_widths) < len(self.encoder_widths):
            raise ValueError("decoder needs at least as many levels as the encoder")
        self.down = nn.ModuleList()
        cin = 2
        skips = [cin]
        for c in self.encoder_widths:
            self.down.append(_block(cin, c, 2))
            cin = c
            skips.append(c)
        skips.pop()  # the deepest level feeds the decoder directly
        self.up = nn.ModuleList()
        n_up = len(self.encoder_widths)
        for i, c in enumerate(self.decoder_widths[:n_up]):
            self.up.append(_block(cin + skips[-1 - i], c, 1))
            cin = c
        self.extra = nn.ModuleList()
        for c in self.decoder_widths[n_up:]:
            self.extra.append(_block(cin, c, 1))
            cin = c
        self.head = nn.Conv2d(cin, 2, 3, padding=1)
        nn.init.normal_(self.head.weight, 0.0, 1e-5)
        nn.init.zeros_(self.head.bias)

    @property
    def multiple(self) -> int:
        """Crop sizes must be divisible by this."""
        return 2 ** len(self.encoder_widths)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """Displacement ``(B, 2, h, w)`` taking ``moving`` (B,1,h,w) onto ``fixed`` (B,1,h,w)."""
        x = torch.cat([moving, fixed], dim=1)
        feats = [x]
        for d in self.down:
            x = d(x)
            feats.append(x)
        feats.pop()
        for u in self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = u(torch.cat([x, feats.pop()], dim=1))
        for e in self.extra:
            x = e(x)
        return self.head(x)


def identity_grid(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel coordinates ``(2, h, w)`` in ``(y, x)`` order."""
    yy, xx = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype), indexing="ij"
    )
    return torch.stack([yy, xx])


def warp(
    images: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear", padding_mode: str = "zeros"
) -> torch.Tensor:
    """Sample ``images`` (B, C, h, w) at ``x + flow(x)``; ``flow`` (B, 2, h, w) in pixels, (dy, dx).

    Parameters
    ----------
    mode : ``"bilinear"`` or ``"nearest"`` (the reference's choice for textures).
    padding_mode : ``"zeros"``, ``"border"`` or ``"reflection"`` (``grid_sample``'s options).
    """
    b, _, h, w = images.shape
    pos = identity_grid(h, w, images.device, flow.dtype)[None] + flow
    gy = 2.0 * pos[:, 0] / max(h - 1, 1) - 1.0
    gx = 2.0 * pos[:, 1] / max(w - 1, 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(images, grid.to(images.dtype), mode=mode, padding_mode=padding_mode, align_corners=True)


def compose(previous: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Total displacement after applying ``flow`` then ``previous``: ``u(x) + previous(x + u(x))``.

    With ``previous`` mapping frame t-1 to a keyframe and ``flow`` mapping frame t to frame t-1, the
    result maps frame t to the keyframe, so the keyframe texture is resampled once (no accumulated
    interpolation blur or nearest-neighbour drift).
    """
    return flow + warp(previous, flow, mode="bilinear", padding_mode="border")
