"""DistributedDataParallel when launched by ``torchrun``; a no-op otherwise.

``torchrun --nproc_per_node=N -m napari_bvdm.cli train-texture ...`` sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; training loops call :func:`setup` once, wrap their model with :meth:`DistContext.wrap`,
draw their own batches from :meth:`DistContext.rank_seed` (each rank a different stream), average
losses with :meth:`DistContext.mean`, and let only the main rank write checkpoints and weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class DistContext:
    """Where this process stands in a distributed run."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str | None = "auto"):
        """The device of this rank: ``cuda:LOCAL_RANK`` under NCCL, otherwise the requested one."""
        import torch

        from .device import resolve_device

        if self.enabled and self.backend == "nccl":
            return torch.device(f"cuda:{self.local_rank}")
        return resolve_device(requested)

    def wrap(self, model):
        """Wrap ``model`` in DDP when distributed (after moving it to its device)."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        dev = next(model.parameters()).device
        return DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    def rank_seed(self, seed: int) -> int:
        """A per-rank seed so ranks draw different batches."""
        return int(seed) * 1000 + self.rank

    def mean(self, value: float) -> float:
        """Average a Python float over ranks."""
        if not self.enabled:
            return float(value)
        import torch
        import torch.distributed as dist

        dev = "cuda" if self.backend == "nccl" else "cpu"
        t = torch.tensor([float(value)], device=dev)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Leave the process group at the end of a successful run.

        Every rank waits for the others first: a rank that tears its gloo connections down while
        another still uses them can make that one abort at exit (SIGABRT, "terminate called without
        an active exception"). Call it on the success path only; a failing rank just raises, and
        torchrun stops the others.
        """
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()


def setup() -> DistContext:
    """Initialise the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    import torch
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(world, dist.get_rank(), local, backend)
