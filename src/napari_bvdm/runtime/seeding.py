"""One seed drives every stage: helpers to derive independent, reproducible streams."""

from __future__ import annotations

import numpy as np


def numpy_rng(seed: int | None, *stream: int | str) -> np.random.Generator:
    """A NumPy generator for ``seed`` and a sub-stream key (e.g. ``("video", 3)``).

    Different keys give independent streams; the same ``(seed, key)`` always gives the same one.
    """
    keys = [_key(k) for k in stream]
    return np.random.default_rng(np.random.SeedSequence([0 if seed is None else int(seed), *keys]))


def torch_generator(seed: int | None, *stream: int | str, device="cpu"):
    """A ``torch.Generator`` seeded from ``(seed, stream...)``."""
    import torch

    s = int(numpy_rng(seed, *stream).integers(0, 2**63 - 1))
    g = torch.Generator(device=device)
    g.manual_seed(s)
    return g


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global generators (for training loops)."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _key(k: int | str) -> int:
    if isinstance(k, (int, np.integer)):
        return int(k)
    # stable (not Python's salted hash)
    h = 0
    for ch in str(k).encode():
        h = (h * 131 + ch) % (2**61 - 1)
    return h
